"""Types of method options (``--config FILE`` keys), checked before a model is loaded.

A method declares ``{key: kind}``; ``check_option_types`` refuses a value of another kind with one line
naming the method, the key and what was expected, so that ``steps: "abc"`` or a list where a number
belongs stops the run at once instead of after minutes of model loading (or as a traceback inside a
worker). Keys a method does not declare are left to the method.
"""

from __future__ import annotations

import math

from fsmi_bench.errors import BadInputError

# A radius or border in pixels beyond this is a typo, and would cost minutes and gigabytes in a dilation.
MAX_PIXELS = 1024

# kind -> (test, what the message calls it)
_KINDS = {
    "int": (lambda value: isinstance(value, int) and not isinstance(value, bool), "a whole number"),
    "positive_int": (lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                     "a whole number of at least 1"),
    "number": (lambda value: isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
               "a finite number"),
    "positive_number": (lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)
                        and math.isfinite(value) and value > 0, "a number above 0"),
    "pixels": (lambda value: isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_PIXELS,
               f"a whole number of pixels from 0 to {MAX_PIXELS}"),
    "radius": (lambda value: isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
               and 0 < value <= MAX_PIXELS, f"a number of pixels above 0 and at most {MAX_PIXELS}"),
    "str": (lambda value: isinstance(value, str), "a string"),
    "bool": (lambda value: isinstance(value, bool), "true or false"),
    "str_mapping": (lambda value: isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(item, (str, int, float)) and not isinstance(item, bool)
        for key, item in value.items()), "a mapping of names to strings"),
}


def check_option_types(config: dict, kinds: dict[str, str], method_name: str) -> None:
    """Refuse the first declared option of ``config`` whose value is not of its kind (None = unset, allowed)."""
    for key, kind in kinds.items():
        if key not in config or config[key] is None:
            continue
        test, expected = _KINDS[kind]
        value = config[key]
        if not test(value):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise BadInputError(f"{method_name}: config key {key!r} must be {expected}, not {shown} "
                                f"({type(value).__name__})")
