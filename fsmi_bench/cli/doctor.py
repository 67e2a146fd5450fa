"""``fsmi doctor``: every metric and method, the weights each needs, and whether they are here."""

from __future__ import annotations

import click

from fsmi_bench.cli.options import weights_option


@click.command("doctor")
@click.option("--protocol", type=click.Choice(["paper", "strict", "both"]), default="both", show_default=True,
              help="Which protocol's metric models to check.")
@click.option("--weights-config", type=click.Path(dir_okay=False), default=None,
              help='JSON file {"weight name": "path"}, as for `fsmi score`.')
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH", help="A weight's local path (repeatable).")
@click.option("-v", "--verbose", is_flag=True, help="Also list every place looked at for a missing weight.")
def command(protocol, weights_config, weights, verbose):
    """List every metric and method, the weights each needs, and whether they are on this machine.

    Never downloads and never loads a model; absent weights are reported, not an error.

    \b
    Example:
      fsmi doctor -v
      fsmi doctor --weights clip-vit-l-14-hf=~/w/clip-vit-large-patch14
    """
    from fsmi_bench.metrics.doctor import doctor_entries, doctor_lines

    entries = doctor_entries(weights_option(weights, weights_config), None if protocol == "both" else protocol)
    for line in doctor_lines(entries, verbose=verbose):
        click.echo(line)
