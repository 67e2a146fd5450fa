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
@click.option("--method", "method_name", default=None,
              help="Check one method instead: its checkout, checkpoint files, packages, offline mode and GPU "
                   "memory, in the method's own python; exit 0 when ready, 2 when not.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="With --method: the method's config file, as for `fsmi run --config`.")
@click.option("--device", default="cuda", show_default=True, help="With --method: the device the run will use.")
@click.pass_context
def command(ctx, protocol, weights_config, weights, verbose, method_name, config_file, device):
    """List every metric and method, the weights each needs, and whether they are on this machine.

    Never downloads and never loads a model; absent weights are reported, not an error.

    \b
    Example:
      fsmi doctor -v
      fsmi doctor --weights clip-vit-l-14-hf=~/w/clip-vit-large-patch14
      fsmi doctor --method anydoor --config anydoor.yaml   # the pre-flight `fsmi run` makes
    """
    if method_name is not None:
        _method_doctor(ctx, method_name, config_file, device)
        return
    from fsmi_bench.metrics.doctor import doctor_entries, doctor_lines

    entries = doctor_entries(weights_option(weights, weights_config), None if protocol == "both" else protocol)
    for line in doctor_lines(entries, verbose=verbose):
        click.echo(line)


def _method_doctor(ctx, method_name: str, config_file: str | None, device: str) -> None:
    from fsmi_bench.run.engine import load_method_config
    from fsmi_bench.run.preflight import checklist_lines, config_hint, method_checklist

    items = method_checklist(method_name, load_method_config(config_file) if config_file else {}, device)
    for line in checklist_lines(method_name, items):
        click.echo(line)
    if any(item.status == "fail" for item in items):
        if config_file is None:
            click.echo(config_hint(method_name))
        ctx.exit(2)
