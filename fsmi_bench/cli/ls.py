"""``fsmi ls``: the registered methods, sources and mask conditions, from the registries alone (no torch)."""

from __future__ import annotations

import click

from fsmi_bench.errors import BadInputError

LS_SECTIONS = ("all", "methods", "sources", "masks")


@click.command("ls")
@click.argument("what", type=click.Choice(LS_SECTIONS), default="all")
def command(what):
    """List methods (with what each needs), sources and mask conditions.

    Methods include those that installed packages declare in the entry-point group `fsmi.methods`,
    with the package they come from; listing them imports nothing.

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
        from fsmi_bench.run.method import METHODS

        lines.append("methods (name, needs, what it does; origin where not fsmi's own):")
        for entry in METHODS.entries():
            needs = ", ".join(entry.needs) if entry.needs else "nothing"
            origin = "" if entry.origin == "fsmi" else f" [{entry.origin}]"
            lines.append(f"  {entry.name:<20} needs {needs:<24} {entry.summary}{origin}")
        for ignored in METHODS.ignored_entry_points():
            why = ignored.reason or f"the name is taken by {ignored.winner}"
            lines.append(f"  {ignored.entry.name[:40]!r:<20} ignored: {ignored.entry.target[:80]} "
                         f"[{ignored.entry.origin}] ({why})")
        lines.append("  any other method: --method package.module:Class or --method path/to/file.py:Class")
    if what in ("all", "sources"):
        from fsmi_bench.benchmark.sources import SOURCES

        lines.append("sources (fsmi build --source NAME[:PATH]):")
        lines.extend(f"  {entry.name:<20} {entry.summary}" for entry in SOURCES.entries())
    if what in ("all", "masks"):
        from fsmi_bench.schema import MASK_CONDITIONS

        lines.append("mask conditions (fsmi run --mask-types ...):")
        lines.extend(f"  {name}" for name in MASK_CONDITIONS)
    return lines
