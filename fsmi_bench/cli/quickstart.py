"""``fsmi quickstart``: the whole chain on the embedded data, with the methods that need no weights."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fsmi_bench.cli.options import command_line, split_commas


@click.command("quickstart")
@click.option("--out", default="fsmi-out", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the benchmark, runs, results, report and plots.")
@click.option("--methods", default="identity,copy-paste,inpaint", show_default=True,
              help="Comma-separated methods to run.")
@click.option("--protocol", default="paper", show_default=True, type=click.Choice(["paper", "strict"]))
@click.option("--metrics", default=None, help="Comma-separated metrics (default: all; those whose weights "
              "are missing are reported as such).")
@click.option("--single", default=80, show_default=True, type=click.IntRange(min=0))
@click.option("--multi", default=125, show_default=True, type=click.IntRange(min=0))
@click.option("--size", default=512, show_default=True, type=int)
@click.option("--leaderboard", type=click.Path(path_type=Path), help="Also write a leaderboard table here.")
@click.option("--no-gallery", is_flag=True, help="Skip the HTML gallery (out/gallery).")
def command(out, methods, protocol, metrics, single, multi, size, leaderboard, no_gallery):
    """Build the embedded benchmark, run methods, score them, write the report, plots and gallery, and
    print a short summary (the full report is in OUT/report.md).

    Every stage resumes, so running it again only does what is missing. Progress bars show only on a
    terminal.

    \b
    Examples:
      fsmi quickstart                                  # everything in ./fsmi-out
      fsmi quickstart --out /tmp/q --single 8 --multi 12 --size 256
      fsmi quickstart --metrics bg_psnr,bg_ssim,fg_psnr,whole_psnr
    """
    from fsmi_bench.quickstart import QuickstartConfig, quickstart

    result = quickstart(QuickstartConfig(
        out=out, methods=split_commas(methods), protocol=protocol, metrics=split_commas(metrics) or None,
        single=single, multi=multi, size=size, leaderboard=leaderboard, command=command_line(),
        progress=sys.stderr.isatty(), gallery=not no_gallery))
    click.echo(result.summary)
