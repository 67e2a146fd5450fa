"""Commands that make and show the benchmark: build, generate-masks, show."""

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
def build_command(source, out, single, multi, seed, size, overwrite, no_previews):
    """Build the FSMI-Edit benchmark: cases, GT, edit regions, 9 mask conditions, manifest, card.

    \b
    Examples:
      fsmi build --out bench                          # 80 single + 125 multi, from the embedded photos
      fsmi build --out small --single 8 --multi 12 --size 256
      fsmi build --source coco:/data/coco-val --out coco-bench
    """
    from fsmi_bench.build import BuildConfig, build_benchmark

    path = build_benchmark(BuildConfig(out=out, source=source, single=single, multi=multi, seed=seed, size=size,
                                       overwrite=overwrite, previews=not no_previews))
    click.echo(f"wrote {path}/manifest.jsonl, {path}/README.md" + ("" if no_previews else
               f" and previews in {path}/previews/"))


@click.command("generate-masks")
@click.option("--bench", type=click.Path(path_type=Path), help="A built benchmark whose masks to redraw.")
@click.option("--images", type=click.Path(path_type=Path), help="Folder of images (with --regions, --out).")
@click.option("--regions", type=click.Path(path_type=Path), help="Folder of region masks named like the images.")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder for --images mode.")
@click.option("--types", default=None, help="Comma-separated mask types (default: the 9 conditions).")
@click.option("--seed", default=None, type=int, help="Seed (default: each case's recorded seed; 0 for --images).")
@click.option("--sheet", type=click.Path(path_type=Path), help="Where to write the contact sheet PNG.")
def generate_masks_command(bench, images, regions, out, types, seed, sheet):
    """Draw free-shape masks and a contact sheet (masks over scenes, a row per type).

    \b
    Examples:
      fsmi generate-masks --bench bench                      # redraw all masks from recorded seeds
      fsmi generate-masks --bench bench --types circle_open,irregular --seed 3
      fsmi generate-masks --images photos/ --regions regions/ --out masks/ --types circle,triangle_open
    """
    from fsmi_bench.errors import BadInputError
    from fsmi_bench.mask_generation import masks_for_folder, regenerate_benchmark_masks

    if bench and (images or regions or out):
        raise BadInputError("use either --bench DIR or --images DIR --regions DIR --out DIR, not both")
    if bench:
        path = regenerate_benchmark_masks(bench, types=types, seed=seed, sheet=sheet)
    elif images and regions and out:
        path = masks_for_folder(images, regions, out, types=types, seed=seed or 0, sheet=sheet)
    else:
        raise BadInputError("give --bench DIR, or --images DIR --regions DIR --out DIR")
    click.echo(f"contact sheet: {path}")


@click.command("show")
@click.argument("bench", type=click.Path(path_type=Path))
@click.argument("case_id")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
def show_command(bench, case_id, out):
    """Lay out one case: scene, subject, each mask over the scene, GT and edit region.

    \b
    Example:
      fsmi show bench multi_0007 --out multi_0007.png
    """
    from fsmi_bench.visualize import show_case

    click.echo(f"wrote {show_case(bench, case_id, out)}")


COMMANDS = [build_command, generate_masks_command, show_command]


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
def quickstart_command(out, methods, protocol, metrics, single, multi, size, leaderboard):
    """Build the embedded benchmark, run methods, score them and print the report.

    Every stage resumes, so running it again only does what is missing.

    \b
    Examples:
      fsmi quickstart                                  # everything in ./fsmi-out
      fsmi quickstart --out /tmp/q --single 8 --multi 12 --size 256
      fsmi quickstart --metrics bg_psnr,bg_ssim,fg_psnr,whole_psnr
    """
    import shlex
    import sys

    from fsmi_bench.quickstart import QuickstartConfig, quickstart

    result = quickstart(QuickstartConfig(
        out=out, methods=tuple(m.strip() for m in methods.split(",") if m.strip()), protocol=protocol,
        metrics=tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else None,
        single=single, multi=multi, size=size, leaderboard=leaderboard,
        command=shlex.join(["fsmi", *sys.argv[1:]])))
    click.echo(result.report_text)
    click.echo(f"\nreport: {result.report}; results: {', '.join(map(str, result.results))}", err=True)


COMMANDS.append(quickstart_command)
