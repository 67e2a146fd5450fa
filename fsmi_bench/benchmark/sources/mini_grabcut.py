"""Object masks for the bundled photos that come without one, derived by GrabCut from a stated box.

The derived masks ship as PNGs in ``mini_data/`` so that a build does not depend on the OpenCV
version; ``derive_mask`` re-derives them (``python -m fsmi_bench.benchmark.sources.regenerate_mini_masks``
rewrites the PNGs), and a test checks that the shipped masks still match what GrabCut gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).with_name("mini_data")


@dataclass(frozen=True)
class GrabCutObject:
    name: str  # file stem in mini_data/
    photo: str  # key of the photo in fsmi_bench.benchmark.sources.mini.PHOTOS
    label: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the photo's pixels, x1 and y1 exclusive
    iterations: int = 8
    # (centre x, centre y, radius x, radius y): the object lies inside this ellipse, and everything outside
    # it is background. For an object whose colours match what touches it (the helmet's black visor
    # against the black stand behind it), where a box alone lets GrabCut keep a block of background.
    ellipse: tuple[int, int, int, int] | None = None


GRABCUT_OBJECTS = (
    GrabCutObject("coffee_cup", "coffee", "cup", (60, 10, 480, 395)),
    GrabCutObject("astronaut_helmet", "astronaut", "helmet", (250, 300, 512, 512), ellipse=(385, 453, 114, 114)),
    GrabCutObject("rocket_rocket", "rocket", "rocket", (285, 115, 350, 420)),
    GrabCutObject("flower_flower", "flower", "flower", (60, 20, 560, 420)),
    GrabCutObject("china_pagoda", "china", "pagoda", (60, 30, 375, 410)),
)


def derive_mask(image: np.ndarray, box: tuple[int, int, int, int], iterations: int = 8,
                ellipse: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """GrabCut foreground (definite + probable) inside ``box`` (and ``ellipse``, when given) of an RGB
    uint8 image, as bool (H, W)."""
    import cv2

    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation draws from OpenCV's global RNG
    x0, y0, x1, y1 = box
    labels = np.zeros(image.shape[:2], np.uint8)
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    if ellipse is None:
        cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), labels, (x0, y0, x1 - x0, y1 - y0),
                    background_model, foreground_model, iterations, cv2.GC_INIT_WITH_RECT)
    else:
        inside = np.zeros(image.shape[:2], np.uint8)
        cv2.ellipse(inside, ellipse[:2], ellipse[2:], 0, 0, 360, 1, thickness=-1)
        inside[:y0] = inside[y1:] = 0
        inside[:, :x0] = inside[:, x1:] = 0
        labels[:] = np.where(inside > 0, cv2.GC_PR_FGD, cv2.GC_BGD)
        cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), labels, None, background_model, foreground_model,
                    iterations, cv2.GC_INIT_WITH_MASK)
    mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return largest_component(mask)


def largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    components, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = ndimage.sum(mask, components, index=np.arange(1, count + 1))
    return ndimage.binary_fill_holes(components == (int(np.argmax(sizes)) + 1))


def shipped_mask_path(name: str) -> Path:
    return DATA_DIR / f"{name}_mask.png"
