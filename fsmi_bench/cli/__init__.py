"""The ``fsmi`` command line: one module per command, each parsing its options and calling one plain function.

Command modules import only click (and the error types) at module level, so that ``fsmi --help`` and
``fsmi ls`` answer at once; a command imports what it needs when it runs.
"""

from __future__ import annotations

import importlib

import click

from fsmi_bench import BENCHMARK_VERSION, __version__
from fsmi_bench.errors import FsmiError

# Module of each command, in the order of the data flow (``fsmi --help`` lists them alphabetically).
COMMAND_MODULES = ("build", "generate_masks", "show", "export", "ls", "run", "import_outputs", "score", "doctor",
                   "weights", "report", "compare", "gallery", "quickstart", "train")


class _UserError(click.ClickException):
    exit_code = 2

    def __init__(self, message: str):
        # One line, whatever the names inside it hold (a case id or path may contain a newline).
        super().__init__(" ".join(str(message).split("\n")).replace("\r", " "))


def environment_error_line(error: OSError) -> str:
    """One line for an operating-system error: what failed, on which file, and that earlier results are kept."""
    where = " -> ".join(str(name) for name in (error.filename, error.filename2) if name)
    reason = error.strerror or str(error) or type(error).__name__
    return (f"{reason}: {where}" if where else reason) + " (files written before are kept)"


class FsmiGroup(click.Group):
    """Turns ``FsmiError`` into a one-line message and a non-zero exit, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FsmiError as error:
            raise _UserError(str(error)) from None
        except click.UsageError as error:
            # Click's usage errors take four lines; one is enough, with where to find the full usage.
            command = error.ctx.command_path if error.ctx is not None else "fsmi"
            raise _UserError(f"{error.format_message()} (see `{command} --help`)") from None
        except OSError as error:
            # Read-only folders, a full disk, a file where a folder is expected: the environment, not a bug.
            raise _UserError(environment_error_line(error)) from None
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


for _name in COMMAND_MODULES:
    main.add_command(importlib.import_module(f"fsmi_bench.cli.{_name}").command)


if __name__ == "__main__":
    main()
