"""``fsmi score``: a run's outputs -> the long results table. The work is in ``fsmi_bench.scoring``."""

from __future__ import annotations

import click

from fsmi_bench.cli.options import split_commas, weights_option


@click.command("score")
@click.option("--bench", required=True, type=click.Path(file_okay=False), help="Benchmark folder from `fsmi build`.")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder from `fsmi run`.")
@click.option("--protocol", type=click.Choice(["paper", "strict"]), default="paper", show_default=True,
              help="paper: SmartEdit's evaluator (256x256, zero-filled background, torchmetrics SSIM, SqueezeNet "
                   "LPIPS, CLIP on SmartEdit's crop); strict: native size, masked regions.")
@click.option("--metrics", multiple=True, metavar="NAMES",
              help="Metrics to compute, comma-separated or repeated (default: all of each case's set).")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Images per model call.")
@click.option("--device", default="cpu", show_default=True, help="Torch device for the metric models.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Results .parquet (CSV beside it); other methods' rows in it are kept. "
                   "Default: RUN/results-PROTOCOL.parquet.")
@click.option("--strict-weights", is_flag=True, help="Stop with an error when a metric's weights are missing.")
@click.option("--weights-config", type=click.Path(dir_okay=False), default=None,
              help='JSON file {"weight name": "path"} (names: see `fsmi doctor`).')
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH", help="A weight's local path (repeatable).")
@click.option("--no-cache", is_flag=True, help="Neither reuse nor store cached features and values.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def command(bench, run_dir, protocol, metrics, batch_size, device, out, strict_weights, weights_config, weights,
            no_cache, progress):
    """Score a run's outputs: one row per (case, mask condition, metric) in a long results table.

    Missing outputs, failed cases and bad outputs become rows with a status and NaN, counted below.
    A metric whose weights are missing gets status missing_weights (or an error with --strict-weights).
    Features are cached under $FSMI_CACHE_DIR, so a second method and a re-score compute only what is new.

    \b
    Examples:
      fsmi score --bench bench --run runs/identity --metrics bg_psnr,bg_ssim,fg_psnr,whole_psnr
      fsmi score --bench bench --run runs/copy-paste --out results/all.parquet --protocol strict
      fsmi score --bench bench --run runs/sd --weights clip-vit-l-14-hf=~/w/clip-vit-large-patch14
    """
    from pathlib import Path

    from fsmi_bench.scoring.score_run import ScoreConfig, score_run

    config = ScoreConfig(bench=Path(bench), run=Path(run_dir), protocol=protocol,
                         metrics=split_commas(metrics) or None, batch_size=batch_size, device=device,
                         out=Path(out) if out else None, strict_weights=strict_weights,
                         weights=weights_option(weights, weights_config), use_cache=not no_cache, progress=progress)
    _, summary = score_run(config)
    for line in summary.lines():
        click.echo(line)
