"""The ``fsmi`` command line. Each command parses its options and calls one plain function.

This module and the ``cli_*`` modules it gathers import only click at module level, so that
``fsmi --help`` and ``fsmi ls`` answer at once; commands import what they need when they run.
"""

from __future__ import annotations

import click

from fsmi_bench import BENCHMARK_VERSION, __version__
from fsmi_bench.errors import FsmiError


class _UserError(click.ClickException):
    exit_code = 2


class FsmiGroup(click.Group):
    """Turns ``FsmiError`` into a one-line message and a non-zero exit, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FsmiError as error:
            raise _UserError(str(error)) from None
        except KeyboardInterrupt:
            click.echo("interrupted; finished files are kept, rerun the same command to resume", err=True)
            ctx.exit(130)


@click.group(cls=FsmiGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fsmi", message=f"%(prog)s %(version)s ({BENCHMARK_VERSION})")
def main():
    """FSMI-Edit: benchmark image editing with free-shape masks and language instructions.

    \b
    Typical session:
      fsmi build --out bench                       # 80 single + 125 multi-image cases, 9 masks each
      fsmi show bench multi_0001 --out case.png    # look at one case
      fsmi run --method copy-paste --bench bench --out runs/copy-paste
      fsmi score --bench bench --run runs/copy-paste --out results/copy-paste.parquet
      fsmi report results/*.parquet --latex
    """


def _add_commands():
    from fsmi_bench import cli_bench

    for command in cli_bench.COMMANDS:
        main.add_command(command)
    # Commands of the later stages live in their own modules; each is optional so that a
    # partial install still answers `fsmi --help`.
    import importlib

    for module_name in ("fsmi_bench.cli_run", "fsmi_bench.cli_export", "fsmi_bench.cli_score", "fsmi_bench.cli_report",
                        "fsmi_bench.cli_train"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        for command in module.COMMANDS:
            main.add_command(command)


_add_commands()


if __name__ == "__main__":
    main()
