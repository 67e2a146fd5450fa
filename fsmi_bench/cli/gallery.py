"""``fsmi gallery``: a static HTML page of the runs' outputs beside the inputs, the GT and their scores."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("gallery")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--bench", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The benchmark folder the runs were made on.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for index.html and its thumbnails.")
@click.option("--results", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Results table (`fsmi score`) whose values are shown and sorted by; repeat for each.")
@click.option("--thumb-size", default=192, show_default=True, help="Longest side of a thumbnail, px.")
def command(runs, bench, out, results, thumb_size):
    """Write a gallery: per case and mask, the input with the mask drawn, the subject, the GT and every
    run's output with a zoom on the edit region, its difference from the GT and its metric values;
    sortable (worst first) and filterable; works offline.

    \b
    Examples:
      fsmi gallery fsmi-out/runs/* --bench fsmi-out/bench --out fsmi-out/gallery \\
          --results fsmi-out/results/copy-paste.parquet --results fsmi-out/results/inpaint.parquet
      # then open fsmi-out/gallery/index.html; the view is kept in the link, e.g. #metric=fg_psnr&mask=circle
    """
    from fsmi_bench.report.gallery import GalleryConfig, build_gallery

    result = build_gallery(GalleryConfig(runs=tuple(runs), bench=bench, out=out, results=tuple(results),
                                         thumb_size=thumb_size, progress=sys.stderr.isatty()))
    unreadable = f"; {result.unreadable} files could not be read (marked in the page)" if result.unreadable else ""
    click.echo(f"wrote {result.index} ({result.rows} rows, {len(result.methods)} methods, "
               f"{result.thumbnails} pictures{unreadable})")
