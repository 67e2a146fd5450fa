"""``fsmi compare``: the regression check of results tables against a committed leaderboard."""

from __future__ import annotations

import sys

import click


@click.command("compare")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False),
              help="Leaderboard written by `fsmi report --leaderboard`.")
@click.option("--tol", default=1e-6, show_default=True, help="Absolute tolerance per value.")
@click.option("--rtol", default=1e-6, show_default=True, help="Relative tolerance per value (added to --tol).")
@click.option("--metrics", help="Comma-separated metrics: compare only their cells.")
def command(results, baseline, tol, rtol, metrics):
    """Exit 0 when RESULTS reproduce every cell of the baseline leaderboard, 1 with a per-cell diff otherwise.

    Each cell's values, n, metric spec, protocol and benchmark version are compared; cells that have no
    value on either side (missing weights) are counted apart, not as differences.

    \b
    Examples:
      fsmi compare fsmi-out/results/*.parquet --baseline leaderboards/mini-weightless.csv
      fsmi compare fsmi-out/results/*.parquet --baseline leaderboards/mini-weightless.csv --metrics bg_psnr,fg_psnr
    """
    from fsmi_bench.cli.options import split_commas
    from fsmi_bench.report.compare import compare_with_baseline

    comparison = compare_with_baseline(results, baseline, tol=tol, rtol=rtol, metrics=split_commas(metrics) or None)
    click.echo(comparison.text())
    if not comparison.ok:
        sys.exit(1)
