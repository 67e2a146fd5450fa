"""Named FlexEdit configs (``configs/<name>.json``) and where the paper-scale weights come from.

A config names the size of every network and how it is initialised: ``"source": "scratch"`` builds it
with random weights from the sizes given, ``"source": "pretrained"`` loads it from a local folder given
as ``path`` in the config or in the environment variable named by ``env``. Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fsmi_bench.errors import BadInputError, MissingWeightsError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class FlexEditConfig:
    """One named FlexEdit configuration. Each section is a plain dict, stored as read from the JSON."""

    name: str
    resolution: int  # training image side in pixels (square)
    num_image_tokens: int  # N, the <img_i> tokens added to the VLLM vocabulary
    vllm: dict
    qformer: dict
    image_encoder: dict
    adapter: dict
    unet: dict
    vae: dict
    scheduler: dict
    inference: dict
    training: dict
    description: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_adapter(self, **switches) -> "FlexEditConfig":
        """A copy with adapter switches changed, e.g. ``with_adapter(use_ca=False)`` (ablations)."""
        return FlexEditConfig(**{**self.to_dict(), "adapter": {**self.adapter, **switches}})


def available_configs() -> list[str]:
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str | os.PathLike) -> FlexEditConfig:
    """Load ``tiny``/``small``/``paper`` by name, or a JSON file of the same shape by path."""
    candidate = Path(name_or_path)
    path = candidate if candidate.suffix == ".json" else CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise BadInputError(
            f"unknown FlexEdit config {str(name_or_path)!r}: give one of {', '.join(available_configs())} "
            "or the path of a JSON file shaped like flexedit_model/configs/tiny.json"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BadInputError(f"{path}: not valid JSON ({error.msg})") from None
    known = set(FlexEditConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BadInputError(f"{path}: unknown config keys {', '.join(unknown)}")
    try:
        return FlexEditConfig(**raw)
    except TypeError as error:
        raise BadInputError(f"{path}: {error}") from None


def pretrained_path(section: dict, what: str, needed_file: str) -> Path:
    """The local folder of a ``"source": "pretrained"`` section, or MissingWeightsError saying what to put where.

    ``needed_file`` is a file that must exist inside the folder (for example ``config.json``).
    """
    configured = section.get("path") or os.environ.get(section.get("env") or "", "")
    hint = (
        f"put {what} in a local folder and give its path as \"path\" in the config"
        + (f" or in the environment variable {section['env']}" if section.get("env") else "")
    )
    if not configured:
        raise MissingWeightsError(f"{what} weights are not configured: {hint}")
    folder = Path(configured).expanduser()
    if section.get("subfolder"):
        folder = folder / section["subfolder"]
    if not (folder / needed_file).is_file():
        raise MissingWeightsError(f"{what} weights not found: {folder / needed_file} is missing; {hint}")
    return folder
