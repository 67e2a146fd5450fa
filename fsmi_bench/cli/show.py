"""``fsmi show``: one case laid out as a picture."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("show")
@click.argument("bench", type=click.Path(path_type=Path))
@click.argument("case_id")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
def command(bench, case_id, out):
    """Lay out one case: scene, subject, each mask over the scene, GT and edit region.

    \b
    Example:
      fsmi show bench multi_0007 --out multi_0007.png
    """
    from fsmi_bench.benchmark.previews import show_case

    click.echo(f"wrote {show_case(bench, case_id, out)}")
