"""``fsmi report``: tables, plots, paired tests and leaderboards from results tables."""

from __future__ import annotations

import click

from fsmi_bench.cli.options import command_line, split_commas
from fsmi_bench.errors import BadInputError


@click.command("report")
@click.argument("results", nargs=-1, type=click.Path())
@click.option("--markdown", "fmt", flag_value="markdown", default=True, help="Markdown tables (default).")
@click.option("--latex", "fmt", flag_value="latex", help="LaTeX tables (needs booktabs and graphicx).")
@click.option("--csv", "fmt", flag_value="csv", help="Tables as tidy CSV (one row per cell).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the tables here instead of printing them.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False), help="Write a PNG per metric here.")
@click.option("--leaderboard", type=click.Path(dir_okay=False),
              help="Also write a leaderboard CSV (cells with provenance) for `fsmi compare`.")
@click.option("--paired", nargs=2, metavar="A B", help="Paired test of method A against method B instead of tables.")
@click.option("--with-paper", is_flag=True, help="Add the paper's reported rows (Tables 1 and 2).")
@click.option("--latex-standalone", is_flag=True, help="Wrap --latex output in a complete article.")
@click.option("--resamples", default=1000, show_default=True, help="Bootstrap resamples of cases.")
@click.option("--seed", default=0, show_default=True, help="Bootstrap seed (reports are reproducible).")
@click.option("--methods", help="Comma-separated methods to show, in this row order (default: all, by name).")
@click.option("--metrics", help="Comma-separated metric columns to show (default: all of the layout).")
@click.option("--decimals", default=4, show_default=True, type=click.IntRange(0, 10), help="Digits after the point.")
@click.option("--all-cases", is_flag=True,
              help="Each method over all its own cases (default: only the cases every method has valid); "
                   "cells on unequal case sets are marked and nothing is bolded over them.")
@click.option("--specs", "specs_out", type=click.Path(dir_okay=False),
              help="Write every metric's full spec (JSON) here; the tables carry a short form.")
@click.option("--iou-bins", metavar="EDGES",
              help="Inner edges of the mask-IoU bins, comma-separated (default: 0.4,0.5,0.6,0.7).")
@click.option("--coverage-bins", metavar="EDGES",
              help="Inner edges of the coverage bins, comma-separated (default: 0.75,0.9,0.99).")
@click.option("--write-paper-rows", type=click.Path(dir_okay=False),
              help="Write the paper's reported rows as a results table (leaderboards/paper_reported.csv).")
def command(results, fmt, out, plots_dir, leaderboard, paired, with_paper, latex_standalone, resamples, seed,
            methods, metrics, decimals, all_cases, specs_out, iou_bins, coverage_bins, write_paper_rows):
    """Tables (paper layout, mean [95 % bootstrap CI] n), plots, paired tests and leaderboards.

    By default every table compares methods on the (case, mask type) pairs they all have valid values
    for, and says so with each method's coverage under the table. Then the same scores by mask IoU and
    coverage bin, and each method's drop from the full mask and slope against mask IoU. RESULTS are
    results tables; run folders among them add a table of each method's cost (from their run.json).

    \b
    Examples:
      fsmi report fsmi-out/results/*.parquet --with-paper --latex --out tables.tex --plots plots/
      fsmi report fsmi-out/results/*.parquet fsmi-out/runs/* --iou-bins 0.45,0.6
      fsmi report fsmi-out/results/*.parquet --methods inpaint,copy-paste --metrics fg_psnr,whole_psnr --decimals 2
      fsmi report fsmi-out/results/*.parquet --paired copy-paste inpaint
      fsmi report fsmi-out/results/*.parquet --leaderboard leaderboards/mine.csv
      fsmi report --write-paper-rows leaderboards/paper_reported.csv
    """
    if write_paper_rows:
        from fsmi_bench.report.reported import write_paper_rows as write_rows

        write_rows(write_paper_rows, command_line())
        click.echo(f"wrote {write_paper_rows}", err=True)
        if not results:
            return
    if not results:
        raise BadInputError("give at least one results table (parquet or CSV); see `fsmi report --help`")
    from fsmi_bench.report.make_report import ReportConfig, make_report

    config = ReportConfig(results=tuple(results), fmt=fmt, out=out, plots_dir=plots_dir, leaderboard=leaderboard,
                          paired=tuple(paired) if paired else None, with_paper=with_paper,
                          latex_standalone=latex_standalone, resamples=resamples, seed=seed,
                          methods=split_commas(methods) or None, metrics=split_commas(metrics) or None,
                          decimals=decimals, all_cases=all_cases, specs_out=specs_out, command=command_line(),
                          iou_bins=_edges(iou_bins, "--iou-bins"),
                          coverage_bins=_edges(coverage_bins, "--coverage-bins"))
    result = make_report(config)
    if out is None:
        click.echo(result.text)
    for path in result.files:
        click.echo(f"wrote {path}", err=True)
    for message in result.messages:
        click.echo(message, err=True)


def _edges(text: str | None, option: str) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(part) for part in split_commas(text))
    except ValueError:
        raise BadInputError(f"{option} {text!r}: give numbers between 0 and 1, comma-separated") from None
