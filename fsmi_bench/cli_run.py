"""``fsmi run`` and ``fsmi ls``. Only click and the error types are imported here; the work is in
``fsmi_bench.run_engine`` (imported when the command runs), so ``fsmi ls methods`` never imports torch."""

from __future__ import annotations

import click

from fsmi_bench.errors import BadInputError

LS_SECTIONS = ("all", "methods", "sources", "masks")


def _split_commas(values) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


@click.command("run")
@click.option("--method", "method_name", required=True, help="Registered method name (see `fsmi ls methods`).")
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
def run_command(method_name, bench, out, mask_types, kinds, limit, shard, device, seed, config_file, weights,
                progress):
    """Run one editing method over a benchmark: one output per (case, mask condition).

    Resumable: run the same command again after an interruption and only the missing outputs are made.
    Failures of single edits are recorded in failures.jsonl and the run goes on. Under
    `accelerate launch`, each process takes its share of the cases.

    \b
    Examples:
      fsmi run --method copy-paste --bench bench --out runs/copy-paste
      fsmi run --method identity --bench bench --out runs/identity --kinds multi --mask-types full,circle
      fsmi run --method sd-inpaint --bench bench --out runs/sd --weights ~/models/sd-inpaint --shard 0/4
    """
    from pathlib import Path

    from fsmi_bench.rundir import parse_shard
    from fsmi_bench.run_engine import RunConfig, load_method_config, run_method

    method_config = load_method_config(config_file) if config_file else {}
    if weights:
        method_config["weights"] = str(Path(weights).expanduser().resolve())
    config = RunConfig(
        method=method_name, bench=Path(bench), out=Path(out),
        mask_types=_split_commas(mask_types) or None, kinds=_split_commas([kinds]),
        limit=limit, shard=parse_shard(shard) if shard else None, device=device, seed=seed,
        method_config=method_config, progress=progress)
    summary = run_method(config)
    shard_text = f" (shard {summary.shard.label})" if summary.shard else ""
    click.echo(f"{method_name}{shard_text}: {summary.selected} selected, {summary.written} written, "
               f"{summary.skipped} already done, {summary.failed} failed in {summary.elapsed_s:.1f} s -> {out}")
    if summary.failed:
        click.echo(f"{summary.failed} edits failed; see the failures file in {out} "
                   "(rerun the same command to retry them)", err=True)


@click.command("ls")
@click.argument("what", type=click.Choice(LS_SECTIONS), default="all")
def ls_command(what):
    """List methods (with what each needs), sources and mask conditions.

    \b
    Examples:
      fsmi ls
      fsmi ls methods
    """
    for line in inventory_lines(what):
        click.echo(line)


def inventory_lines(what: str = "all") -> list[str]:
    """The lines ``fsmi ls WHAT`` prints. Imports only the registries (no torch, no models)."""
    if what not in LS_SECTIONS:
        raise BadInputError(f"cannot list {what!r} (choose from {', '.join(LS_SECTIONS)})")
    lines: list[str] = []
    if what in ("all", "methods"):
        from fsmi_bench.methods import METHODS

        lines.append("methods (name, needs, what it does):")
        for entry in METHODS.entries():
            needs = ", ".join(entry.needs) if entry.needs else "nothing"
            lines.append(f"  {entry.name:<20} needs {needs:<24} {entry.summary}")
    if what in ("all", "sources"):
        from fsmi_bench.sources import SOURCES

        lines.append("sources (fsmi build --source NAME[:PATH]):")
        lines.extend(f"  {entry.name:<20} {entry.summary}" for entry in SOURCES.entries())
    if what in ("all", "masks"):
        from fsmi_bench.masks import MASK_CONDITIONS

        lines.append("mask conditions (fsmi run --mask-types ...):")
        lines.extend(f"  {name}" for name in MASK_CONDITIONS)
    return lines


COMMANDS = [run_command, ls_command]
