"""Option parsing shared by the commands: comma lists, the command line, metric weight paths."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from fsmi_bench.errors import BadInputError


def split_commas(values) -> tuple[str, ...]:
    """``("a,b", "c")`` or ``"a, b"`` -> ``("a", "b", "c")``; empty parts are dropped, order is kept."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def command_line() -> str:
    """The command as typed, for provenance (``fsmi ARGS``)."""
    return "fsmi " + shlex.join(sys.argv[1:])


def weights_option(values, config_file) -> dict:
    """``--weights NAME=PATH`` (repeatable) over ``--weights-config FILE``: the metric weights to use."""
    from fsmi_bench.metrics.weights import check_weight_names, load_weights_config

    weights = load_weights_config(config_file)
    flags = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise BadInputError(f"--weights {value!r}: expected NAME=PATH, e.g. clip-vit-l-14=~/w/clip.safetensors")
        flags[name.strip()] = path.strip()
    check_weight_names(flags, "--weights")
    weights.update({name: str(Path(path).expanduser()) for name, path in flags.items()})
    return weights
