"""``fsmi run``: one method over a benchmark. The work is in ``fsmi_bench.run.engine`` (imported when the
command runs), so this module imports no torch."""

from __future__ import annotations

import click

from fsmi_bench.cli.options import split_commas


@click.command("run")
@click.option("--method", "method_name", required=True, help="A method name (see `fsmi ls methods`), or package.module:Class, or path/to/file.py:Class.")
@click.option("--bench", required=True, type=click.Path(file_okay=False), help="Benchmark folder from `fsmi build`.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write (or resume).")
@click.option("--mask-types", multiple=True, metavar="TYPES",
              help="Mask conditions to run, comma-separated or repeated (default: all in the benchmark).")
@click.option("--kinds", default="single,multi", show_default=True, help="Case kinds: single, multi or both.")
@click.option("--limit", type=int, default=None, help="Only the first N cases (sorted ids, after --kinds).")
@click.option("--shard", default=None, metavar="I/N", help="Run only cases whose position is I modulo N.")
@click.option("--device", default="cpu", show_default=True, help="Torch device for methods that use one.")
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed; each edit's seed derives from it.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Method options as a JSON or YAML mapping (recorded in run.json).")
@click.option("--weights", type=click.Path(), default=None,
              help="Local weights file or folder for the method (sets config key 'weights').")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def command(method_name, bench, out, mask_types, kinds, limit, shard, device, seed, config_file, weights, progress):
    """Run one editing method over a benchmark: one output per (case, mask condition).

    Resumable: run the same command again after an interruption and only the missing outputs are made.
    Failures of single edits are recorded in failures.jsonl and the run goes on. Under
    `accelerate launch`, each process takes its share of the cases.

    \b
    Examples:
      fsmi run --method copy-paste --bench bench --out runs/copy-paste
      fsmi run --method identity --bench bench --out runs/identity --kinds multi --mask-types full,circle
      fsmi run --method sd-inpaint --bench bench --out runs/sd --weights ~/models/sd-inpaint --shard 0/4
      fsmi run --method my_edit.py:MyEdit --bench bench --out runs/my-edit   # your own Method subclass

    A method given as package.module:Class or file.py:Class is named in results by its class's `name`
    attribute (else the class name); run.json keeps the target as method_target.
    """
    from pathlib import Path

    from fsmi_bench.run.engine import RunConfig, load_method_config, run_method
    from fsmi_bench.run.folder import parse_shard

    method_config = load_method_config(config_file) if config_file else {}
    if weights:
        method_config["weights"] = str(Path(weights).expanduser().resolve())
    config = RunConfig(
        method=method_name, bench=Path(bench), out=Path(out),
        mask_types=split_commas(mask_types) or None, kinds=split_commas(kinds),
        limit=limit, shard=parse_shard(shard) if shard else None, device=device, seed=seed,
        method_config=method_config, progress=progress)
    summary = run_method(config)
    shard_text = f" (shard {summary.shard.label})" if summary.shard else ""
    click.echo(f"{summary.method}{shard_text}: {summary.selected} selected, {summary.written} written, "
               f"{summary.skipped} already done, {summary.failed} failed in {summary.elapsed_s:.1f} s -> {out}")
    if summary.failed:
        click.echo(f"{summary.failed} edits failed; see the failures file in {out} "
                   "(rerun the same command to retry them)", err=True)
