"""``fsmi generate-masks``: (re)draw free-shape masks for a benchmark or a folder of images."""

from __future__ import annotations

from pathlib import Path

import click

from fsmi_bench.errors import BadInputError


@click.command("generate-masks")
@click.option("--bench", type=click.Path(path_type=Path), help="A built benchmark whose masks to redraw.")
@click.option("--images", type=click.Path(path_type=Path), help="Folder of images (with --regions, --out).")
@click.option("--regions", type=click.Path(path_type=Path), help="Folder of region masks named like the images.")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder for --images mode.")
@click.option("--types", default=None, help="Comma-separated mask types (default: the 9 conditions).")
@click.option("--seed", default=None, type=int, help="Seed (default: each case's recorded seed; 0 for --images).")
@click.option("--sheet", type=click.Path(path_type=Path), help="Where to write the contact sheet PNG.")
@click.option("--replace-drawn", is_flag=True, help="With --bench: redraw hand-drawn masks too (kept by default).")
def command(bench, images, regions, out, types, seed, sheet, replace_drawn):
    """Draw free-shape masks and a contact sheet (masks over scenes, a row per type).

    \b
    Examples:
      fsmi generate-masks --bench bench                      # redraw all masks from recorded seeds
      fsmi generate-masks --bench bench --types circle_open,irregular --seed 3
      fsmi generate-masks --images photos/ --regions regions/ --out masks/ --types circle,triangle_open
    """
    from fsmi_bench.benchmark.regenerate_masks import masks_for_folder, regenerate_benchmark_masks

    if bench and (images or regions or out):
        raise BadInputError("use either --bench DIR or --images DIR --regions DIR --out DIR, not both")
    if bench:
        path = regenerate_benchmark_masks(bench, types=types, seed=seed, sheet=sheet,
                                              replace_drawn=replace_drawn)
    elif images and regions and out:
        path = masks_for_folder(images, regions, out, types=types, seed=seed or 0, sheet=sheet)
    else:
        raise BadInputError("give --bench DIR, or --images DIR --regions DIR --out DIR")
    click.echo(f"contact sheet: {path}")
