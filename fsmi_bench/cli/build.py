"""``fsmi build``: make the FSMI-Edit benchmark from a source."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("build")
@click.option("--source", default="mini", show_default=True,
              help="mini (embedded photos), coco:PATH, hf:PATH or fsmi:PATH.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Benchmark folder to write.")
@click.option("--single", default=80, show_default=True, type=click.IntRange(min=0), help="Single-image cases.")
@click.option("--multi", default=125, show_default=True, type=click.IntRange(min=0), help="Multi-image cases.")
@click.option("--seed", default=0, show_default=True, type=int, help="Build seed; same seed, same bytes.")
@click.option("--size", default=512, show_default=True, type=int, help="Long side of scenes, in pixels.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output folder.")
@click.option("--no-previews", is_flag=True, help="Skip previews/masks.png and previews/cases.png.")
def command(source, out, single, multi, seed, size, overwrite, no_previews):
    """Build the FSMI-Edit benchmark: cases, GT, edit regions, 9 mask conditions, manifest, card.

    \b
    Examples:
      fsmi build --out bench                          # 80 single + 125 multi, from the embedded photos
      fsmi build --out small --single 8 --multi 12 --size 256
      fsmi build --source coco:/data/coco-val --out coco-bench
    """
    from fsmi_bench.benchmark.builder import BuildConfig, build_benchmark

    path = build_benchmark(BuildConfig(out=out, source=source, single=single, multi=multi, seed=seed, size=size,
                                       overwrite=overwrite, previews=not no_previews))
    click.echo(f"wrote {path}/manifest.jsonl, {path}/README.md" + ("" if no_previews else
               f" and previews in {path}/previews/"))
