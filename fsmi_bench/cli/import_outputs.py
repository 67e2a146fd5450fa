"""``fsmi import-outputs``: outputs made with your own code -> a run folder that `fsmi score` reads.
The work is in ``fsmi_bench.run.import_outputs`` (imported when the command runs)."""

from __future__ import annotations

import click

from fsmi_bench.cli.options import split_commas


@click.command("import-outputs")
@click.option("--bench", required=True, type=click.Path(file_okay=False), help="Benchmark folder from `fsmi build`.")
@click.option("--from", "source", required=True, type=click.Path(),
              help="Folder of <case_id>/<mask_type>.png (or .jpg/.webp), or a CSV with columns case_id,mask_type,path.")
@click.option("--method-name", required=True, help="The name these outputs carry in results and reports.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--mask-types", multiple=True, metavar="TYPES",
              help="Mask conditions you made outputs for, comma-separated (default: all in the benchmark).")
@click.option("--kinds", default="single,multi", show_default=True, help="Case kinds you made outputs for.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def command(bench, source, method_name, out, mask_types, kinds, progress):
    """Score outputs made elsewhere: check them and write a run folder, as `fsmi run` would.

    Each image must decode (within the pixel limit, FSMI_MAX_IMAGE_PIXELS); its EXIF orientation is applied;
    grayscale, palette or RGBA become RGB; another size than the scene's is resized by `fsmi run`'s rule and
    recorded; an animated image is refused. A selected (case, mask condition) without a file is scored as a
    missing output, one whose file cannot be used as a bad output; files that match no case are named.
    run.json records the source, the sha256 of every file read, and what was missing. Importing again into
    the same folder replaces the earlier import (unchanged files are kept); an interrupted import resumes
    when run again. The folder is locked as `fsmi run` locks its own: neither adopts the other's folder.

    \b
    Examples:
      fsmi import-outputs --bench bench --from ~/my-method/outputs --method-name my-method --out runs/my-method
      fsmi import-outputs --bench bench --from outputs.csv --method-name mine --out runs/mine --kinds multi
      fsmi score --bench bench --run runs/my-method --out results/my-method.parquet
    """
    from pathlib import Path

    from fsmi_bench.run.import_outputs import ImportConfig, import_outputs

    config = ImportConfig(bench=Path(bench), source=Path(source), method_name=method_name, out=Path(out),
                          mask_types=split_commas(mask_types) or None, kinds=split_commas(kinds), progress=progress)
    summary = import_outputs(config)
    click.echo(summary.line(method_name.strip()))
    if summary.missing or summary.invalid:
        click.echo(f"{summary.missing + summary.invalid} outputs missing or invalid; listed in {out}/failures.jsonl",
                   err=True)
    if summary.unmatched:
        more = summary.unmatched - len(summary.unmatched_names)
        names = ", ".join(summary.unmatched_names) + (f" and {more} more" if more else "")
        click.echo(f"{summary.unmatched} files matched no case and were not used: {names} (listed in "
                   f"{out}/run.json, imported.unmatched)", err=True)
