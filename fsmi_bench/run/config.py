"""What ``fsmi run`` is asked to do (``RunConfig``), and the method's options file (``--config FILE``): a small
JSON or YAML mapping, read safely."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from fsmi_bench.errors import BadInputError
from fsmi_bench.run.folder import Shard
from fsmi_bench.schema import KINDS


@dataclass(frozen=True)
class RunConfig:
    """What ``fsmi run`` was asked to do.

    mask_types: the mask conditions to run (None = all in the manifest).
    kinds: "single" and/or "multi".
    limit: run only the first ``limit`` cases (sorted case ids, after the kinds filter), None = all.
    shard: this process's share; None = everything, or the accelerate rank when launched with several.
    method_config: the method's options (from ``--config`` and ``--weights``), recorded in run.json.
    """

    method: str
    bench: Path
    out: Path
    mask_types: tuple[str, ...] | None = None
    kinds: tuple[str, ...] = KINDS
    limit: int | None = None
    shard: Shard | None = None
    device: str = "cpu"
    seed: int = 0
    method_config: dict = field(default_factory=dict)
    progress: bool = True


# A method config is a handful of options; a larger file is not one (and would be slow to parse).
MAX_CONFIG_BYTES = 1 << 20


def load_method_config(path: str | os.PathLike) -> dict:
    """A method config file: a JSON (``.json``) or YAML (``.yaml``/``.yml``) mapping of option -> value.

    Anything else (a binary file, text that is not UTF-8, invalid or deeply nested JSON/YAML, YAML aliases,
    a list) is one ``BadInputError``, raised before any method is set up.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise BadInputError(f"config {path} is {path.stat().st_size} bytes; a method config is a small "
                                f"JSON or YAML mapping (at most {MAX_CONFIG_BYTES} bytes)")
        data = path.read_bytes()
    except OSError as error:
        raise BadInputError(f"cannot read config {path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInputError(f"config {path} is not UTF-8 text (byte {error.start}); give a JSON or YAML "
                            "mapping") from None
    if "\x00" in text:
        raise BadInputError(f"config {path} is a binary file; give a JSON or YAML mapping")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            config = yaml.load(text, Loader=_config_loader())  # safe, without aliases
        except yaml.YAMLError as error:
            raise BadInputError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
        except RecursionError:
            raise BadInputError(f"{path}: YAML nested too deeply") from None
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{path} is not valid JSON: {error.msg} (line {error.lineno})") from None
        except RecursionError:
            raise BadInputError(f"{path}: JSON nested too deeply") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise BadInputError(f"{path} must hold a mapping of option names to values, not {type(config).__name__}")
    bad_key = next((key for key in config if not isinstance(key, str)), None)
    if bad_key is not None:
        raise BadInputError(f"{path}: option names must be strings, not {bad_key!r}")
    return config


def _config_loader():
    import yaml

    class ConfigLoader(yaml.SafeLoader):
        """YAML's safe loader without aliases: ``*name`` can expand a small file into billions of values."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed in a method config, "
                                     f"line {event.start_mark.line + 1}")
            return super().compose_node(parent, index)

    return ConfigLoader
