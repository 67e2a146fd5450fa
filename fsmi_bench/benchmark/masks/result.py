"""The record every mask generator returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, eq=False)
class MaskResult:
    """One generated mask and how it was drawn.

    mask: bool (H, W), the edit region's size, True = pixels marked by the simulated user. Never empty.
    params: JSON-serialisable dict (plain floats, ints, str, bools, lists) holding every parameter drawn
        for the accepted shape (``type``, ``scale``, ``rotation_deg``, ``stroke_width_px``, ``gap_deg``,
        ``attempts``, ``band``, ...); the builder records it in the manifest.
    iou: intersection over union of ``mask`` with the edit region, in [0, 1].
    coverage: |mask & region| / |region|, in [0, 1].
    """

    mask: Any  # np.ndarray; annotated loosely so that importing this module does not import numpy
    params: dict
    iou: float
    coverage: float


def json_ready(value: Any, digits: int = 6) -> Any:
    """``value`` as plain JSON types: numpy arrays and scalars become lists and Python numbers, floats
    are rounded to ``digits`` decimals (so manifests stay short and byte-stable)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(key): json_ready(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item, digits) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return round(value, digits)
    raise TypeError(f"cannot make {type(value).__name__} JSON-ready")
