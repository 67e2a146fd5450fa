"""``fsmi export``: write a built benchmark in another format. Only click is imported here, so that
``fsmi --help`` stays fast; the work happens in ``fsmi_bench.benchmark.export``."""

from __future__ import annotations

import click

from fsmi_bench.errors import BadInputError


@click.command("export")
@click.argument("bench_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--format", "export_format", type=click.Choice(["hf", "fsmi"]), default="hf", show_default=True,
              help="hf: a Hugging Face `datasets` folder (save_to_disk), one row per case; fsmi: an FSMI "
                   "folder (cases.jsonl and the case files), for hand edits.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=str),
              help="Folder to write; must be absent or empty unless --overwrite.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUT (only once the export has succeeded).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def command(bench_dir, export_format, out_dir, overwrite, no_progress):
    """Export the benchmark in BENCH_DIR (verified against its sha256) to OUT.

    \b
    Example:
      fsmi export bench --format hf --out bench-hf
      python -c "import datasets; print(datasets.load_from_disk('bench-hf'))"
      fsmi export bench --format fsmi --out bench-fsmi
    Each folder reads back as a source: fsmi build --source hf:bench-hf (or fsmi:bench-fsmi) ...
    """
    from fsmi_bench.benchmark.export import export_fsmi, export_hf

    exporters = {"hf": export_hf, "fsmi": export_fsmi}
    if export_format not in exporters:  # click.Choice already refuses others
        raise BadInputError(f"unknown export format {export_format!r}")
    summary = exporters[export_format](bench_dir, out_dir, overwrite=overwrite, progress=not no_progress)
    click.echo(f"wrote {summary.cases} cases ({summary.mask_conditions} masks, {summary.benchmark_version}) "
               f"to {summary.out_dir}")


