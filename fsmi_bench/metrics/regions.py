"""Which pixels a metric sees: region selection, bounding-box crops, zero-filling, resizing.

Conventions: images are RGB uint8 (H, W, 3); regions are bool (H, W), True = pixel belongs to the
region the metric looks at (for ``bg_*`` metrics that is the complement of the edit region).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fsmi_bench.errors import BadInputError


@dataclass(frozen=True)
class Box:
    """Half-open pixel box: rows [top, bottom), columns [left, right)."""

    top: int
    left: int
    bottom: int
    right: int


def metric_region(edit_region: np.ndarray, region: str) -> np.ndarray:
    """The pixels a ``region`` ("fg", "bg" or "whole") metric looks at, as a bool (H, W) array."""
    if region == "fg":
        return edit_region
    if region == "bg":
        return ~edit_region
    if region == "whole":
        return np.ones_like(edit_region, dtype=bool)
    raise ValueError(f"unknown region {region!r}")


def bounding_box(mask: np.ndarray) -> Box | None:
    """Tight bounding box of the True pixels, or ``None`` for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return Box(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


def smartedit_box(mask: np.ndarray) -> Box | None:
    """The box SmartEdit's evaluator crops: ``y, x = np.where(mask)``, then PIL
    ``crop((x.min(), y.min(), x.max(), y.max()))``, whose right and bottom edges are exclusive, so the
    region's last column and row are left out. ``None`` for an empty mask (SmartEdit's script would
    fail); a region one pixel wide or tall gives an empty box (height or width 0)."""
    box = bounding_box(mask)
    if box is None:
        return None
    return Box(box.top, box.left, box.bottom - 1, box.right - 1)


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    return np.ascontiguousarray(array[box.top:box.bottom, box.left:box.right])


def zero_fill(image: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Copy of ``image`` with every pixel outside ``keep`` set to 0 (black)."""
    return np.where(keep[..., None], image, np.zeros((), dtype=image.dtype))


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 image resized to ``size`` x ``size`` with PIL bicubic (as SmartEdit's evaluator)."""
    from PIL import Image

    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC), dtype=np.uint8)


def resize_region(region: np.ndarray, size: int) -> np.ndarray:
    """Bool region resized to ``size`` x ``size`` with nearest neighbour (stays binary)."""
    from PIL import Image

    if region.shape == (size, size):
        return region
    image = Image.fromarray(region.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
    return np.asarray(image) > 127


def region_view(output: np.ndarray, reference: np.ndarray, keep: np.ndarray, mode: str):
    """What a pixel metric compares under ``mode``: (output, reference, pixel mask or None).

    ``bbox_crop`` crops both images to the box of ``keep``; ``smartedit_crop`` to SmartEdit's box of
    ``keep`` (``smartedit_box``: the last row and column left out); ``zero_fill`` zeroes pixels outside
    ``keep`` and compares whole images; ``masked`` returns the images unchanged plus ``keep`` (the
    metric averages over those pixels only); ``whole`` ignores ``keep``. Returns ``None`` when the
    region, or its crop, is empty (the metric is then undefined: NaN).
    """
    if mode == "whole":
        return output, reference, None
    box = bounding_box(keep)
    if box is None:
        return None
    if mode == "bbox_crop":
        return crop(output, box), crop(reference, box), None
    if mode == "smartedit_crop":
        box = smartedit_box(keep)
        if box.bottom <= box.top or box.right <= box.left:
            return None
        return crop(output, box), crop(reference, box), None
    if mode == "zero_fill":
        return zero_fill(output, keep), zero_fill(reference, keep), None
    if mode == "masked":
        return output, reference, keep
    raise BadInputError(f"unknown region mode {mode!r} (known: bbox_crop, smartedit_crop, masked, zero_fill, whole)")
