"""Compositing: scene crops, object cut-outs, scaling, placement and pasting.

Ground truth by compositing is exact: the only pixels that differ between a case's input and its GT
are those of the pasted objects (with a one-pixel soft edge), so the edit region is known.
Images are RGB uint8 (H, W, 3); masks are bool (H, W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fsmi_bench.benchmark.sources.base import ObjectInstance

# Plausible composites: an object's box height as a fraction of the scene's height, by its size class
# (a hand-held thing is a small part of the view, a person or a building a large one), and its base (the
# box's bottom) on the lower part of the scene, where a floor, a table or the ground is; a scene takes
# objects up to the size class it ``holds`` (a close-up of a table holds no person or pagoda).
SIZE_CLASSES = ("small", "medium", "large")
HEIGHT_RANGES = {"small": (0.15, 0.4), "medium": (0.35, 0.7), "large": (0.45, 0.8)}
BASE_BAND = (0.7, 1.0)  # where the object's base lies, as a fraction of the scene's height from the top
MAX_OBJECT_EXTENT = 0.8  # the object's box never exceeds this fraction of the scene's width or height
MAX_UPSCALE = 3.0  # tiny annotated objects are not blown up beyond this factor
SCENE_CROP_AREA_RANGE = (0.65, 1.0)
EDGE_SOFTNESS_SIGMA = 0.7  # Gaussian blur of the paste alpha, for a natural edge
REGION_DILATION_PX = 2  # the edit region covers the soft edge


@dataclass(frozen=True, eq=False)
class Cutout:
    """An object cropped to its mask's box: RGB pixels and the mask (True = object)."""

    rgb: np.ndarray
    mask: np.ndarray
    label: str


@dataclass(frozen=True, eq=False)
class Placement:
    """Where and how large a cut-out goes in a scene: top-left corner and size in scene pixels, and the
    rule it was drawn under (its size class, the height range and the base band, fractions of the scene's
    height)."""

    x: int
    y: int
    width: int
    height: int
    size: str = "medium"
    height_range: tuple[float, float] = HEIGHT_RANGES["medium"]
    base_band: tuple[float, float] = BASE_BAND

    def record(self, scene_shape) -> dict:
        """The manifest's account of this placement: box, height and base as fractions of the scene."""
        scene_height = scene_shape[0]
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height, "size": self.size,
                "height_fraction": round(self.height / scene_height, 6),
                "base_fraction": round((self.y + self.height) / scene_height, 6),
                "height_range": list(self.height_range), "base_band": list(self.base_band)}


def resize_rgb(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    as_image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(as_image.resize((width, height), Image.Resampling.BILINEAR)) >= 128


def long_side_to(image: np.ndarray, size: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = size / max(height, width)
    return resize_rgb(image, max(1, round(width * scale)), max(1, round(height * scale)))


def prepare_scene(photo: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A random crop (same aspect ratio, 65-100 % of the area), maybe mirrored, long side ``size``."""
    height, width = photo.shape[:2]
    side_fraction = np.sqrt(rng.uniform(*SCENE_CROP_AREA_RANGE))
    crop_height, crop_width = max(8, round(height * side_fraction)), max(8, round(width * side_fraction))
    top = int(rng.integers(0, height - crop_height + 1))
    left = int(rng.integers(0, width - crop_width + 1))
    crop = photo[top:top + crop_height, left:left + crop_width]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return long_side_to(np.ascontiguousarray(crop), size)


def cut_out(instance: ObjectInstance, mirror: bool = False) -> Cutout:
    x0, y0, x1, y1 = instance.bbox()
    rgb, mask = instance.image[y0:y1, x0:x1], instance.mask[y0:y1, x0:x1]
    if mirror:
        rgb, mask = rgb[:, ::-1], mask[:, ::-1]
    return Cutout(np.ascontiguousarray(rgb), np.ascontiguousarray(mask), instance.label)


def fits_scene(size: str, holds: str) -> bool:
    """Whether an object of size class ``size`` is plausible in a scene that holds up to ``holds``."""
    return SIZE_CLASSES.index(size) <= SIZE_CLASSES.index(holds)


def height_range(cutout: Cutout, size: str, scene_shape) -> tuple[float, float] | None:
    """The object's plausible heights (fractions of the scene's height) that also keep its box inside
    MAX_OBJECT_EXTENT of the scene and its upscale under MAX_UPSCALE; None when none does."""
    scene_height, scene_width = scene_shape[:2]
    height, width = cutout.mask.shape
    low, high = HEIGHT_RANGES[size]
    # the limits, as heights: the width grows with the height at the cut-out's aspect ratio
    high = min(high, MAX_OBJECT_EXTENT, MAX_OBJECT_EXTENT * scene_width * height / width / scene_height,
               MAX_UPSCALE * height / scene_height)
    return (low, high) if high >= low else None


def _box(cutout: Cutout, height_fraction: float, allowed: tuple[float, float], scene_shape) -> tuple[int, int]:
    """(width, height) in pixels for a box ``height_fraction`` of the scene's height, whole pixels kept
    inside ``allowed``."""
    height, width = cutout.mask.shape
    scene_height = scene_shape[0]
    lowest, highest = math.ceil(allowed[0] * scene_height), math.floor(allowed[1] * scene_height)
    box_height = max(4, min(max(round(height_fraction * scene_height), lowest), highest))
    return max(4, round(width * box_height / height)), box_height


def random_placement(cutout: Cutout, size: str, scene_shape, rng: np.random.Generator) -> Placement:
    """A height drawn from the object's plausible range and a base in BASE_BAND, fully inside the scene.
    Raises ValueError when the object cannot be plausible in this scene (see ``height_range``)."""
    scene_height, scene_width = scene_shape[:2]
    allowed = height_range(cutout, size, scene_shape)
    if allowed is None:
        raise ValueError(f"no plausible size for a {size} object of {cutout.mask.shape} px in {scene_shape[:2]}")
    width, height = _box(cutout, rng.uniform(*allowed), allowed, scene_shape)
    x = int(rng.integers(0, scene_width - width + 1))
    base = int(np.clip(math.ceil(rng.uniform(*BASE_BAND) * scene_height), height, scene_height))
    return Placement(x, base - height, width, height, size, HEIGHT_RANGES[size], BASE_BAND)


def placement_in_place_of(cutout: Cutout, size: str, old: Placement, scene_shape,
                          rng: np.random.Generator) -> Placement:
    """Put ``cutout`` where ``old`` was: a height drawn from its own plausible range, standing on the
    same base at the same centre, clipped into the scene."""
    scene_height, scene_width = scene_shape[:2]
    allowed = height_range(cutout, size, scene_shape)
    if allowed is None:
        raise ValueError(f"no plausible size for a {size} object of {cutout.mask.shape} px in {scene_shape[:2]}")
    width, height = _box(cutout, rng.uniform(*allowed), allowed, scene_shape)
    centre_x, base = old.x + old.width / 2, max(old.y + old.height, height)
    x = int(np.clip(round(centre_x - width / 2), 0, scene_width - width))
    return Placement(x, base - height, width, height, size, HEIGHT_RANGES[size], BASE_BAND)


def paste(scene: np.ndarray, cutout: Cutout, where: Placement) -> tuple[np.ndarray, np.ndarray]:
    """Composite ``cutout`` onto ``scene``; returns (image, footprint) where footprint is the bool
    mask of every pixel the paste touched."""
    from scipy.ndimage import gaussian_filter

    rgb = resize_rgb(cutout.rgb, where.width, where.height).astype(np.float32)
    mask = resize_mask(cutout.mask, where.width, where.height)
    pad = 3  # room for the soft edge
    alpha = np.zeros((where.height + 2 * pad, where.width + 2 * pad), np.float32)
    alpha[pad:-pad, pad:-pad] = mask
    alpha = gaussian_filter(alpha, EDGE_SOFTNESS_SIGMA)
    alpha[alpha < 1e-3] = 0.0
    canvas_alpha = np.zeros(scene.shape[:2], np.float32)
    canvas_rgb = np.zeros(scene.shape, np.float32)
    top, left = where.y - pad, where.x - pad
    y0, x0 = max(0, top), max(0, left)
    y1 = min(scene.shape[0], top + alpha.shape[0])
    x1 = min(scene.shape[1], left + alpha.shape[1])
    canvas_alpha[y0:y1, x0:x1] = alpha[y0 - top:y1 - top, x0 - left:x1 - left]
    padded_rgb = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    canvas_rgb[y0:y1, x0:x1] = padded_rgb[y0 - top:y1 - top, x0 - left:x1 - left]
    weight = canvas_alpha[..., None]
    image = np.rint(weight * canvas_rgb + (1.0 - weight) * scene.astype(np.float32))
    return np.clip(image, 0, 255).astype(np.uint8), canvas_alpha > 0


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def subject_image(instance: ObjectInstance, complexity: str, size: int) -> np.ndarray:
    """The reference picture of the object for a multi-image case.

    ``simple``: the object alone on a plain white background. ``complex``: the object in its own
    photo, cropped around it with a margin, background noise included. Long side ``size``.
    """
    x0, y0, x1, y1 = instance.bbox()
    margin_x, margin_y = round(0.15 * (x1 - x0)) + 4, round(0.15 * (y1 - y0)) + 4
    if complexity == "simple":
        cut = cut_out(instance)
        canvas = np.full((cut.mask.shape[0] + 2 * margin_y, cut.mask.shape[1] + 2 * margin_x, 3), 255, np.uint8)
        window = canvas[margin_y:-margin_y, margin_x:-margin_x]
        window[cut.mask] = cut.rgb[cut.mask]
        return long_side_to(canvas, size)
    height, width = instance.mask.shape
    crop = instance.image[max(0, y0 - 2 * margin_y):min(height, y1 + 2 * margin_y),
                          max(0, x0 - 2 * margin_x):min(width, x1 + 2 * margin_x)]
    return long_side_to(np.ascontiguousarray(crop), size)


def subject_mask_image(instance: ObjectInstance, complexity: str, size: int) -> np.ndarray:
    """The object's own pixels (bool, True = object) in ``subject_image``'s picture, same size.

    Made with the same crop and margin as ``subject_image``, and resized by ``resize_mask`` (thresholded,
    so it stays binary), so methods that take a reference mask (AnyDoor, LAR-Gen) get the true one.
    """
    x0, y0, x1, y1 = instance.bbox()
    margin_x, margin_y = round(0.15 * (x1 - x0)) + 4, round(0.15 * (y1 - y0)) + 4
    if complexity == "simple":
        cut = cut_out(instance)
        canvas = np.zeros((cut.mask.shape[0] + 2 * margin_y, cut.mask.shape[1] + 2 * margin_x), bool)
        canvas[margin_y:-margin_y, margin_x:-margin_x] = cut.mask
    else:
        height, width = instance.mask.shape
        canvas = instance.mask[max(0, y0 - 2 * margin_y):min(height, y1 + 2 * margin_y),
                               max(0, x0 - 2 * margin_x):min(width, x1 + 2 * margin_x)]
    scale = size / max(canvas.shape)
    return resize_mask(np.ascontiguousarray(canvas), max(1, round(canvas.shape[1] * scale)),
                       max(1, round(canvas.shape[0] * scale)))
