"""Toy inputs for the FlexEdit tests."""

from __future__ import annotations

import numpy as np


def toy_edit(height: int = 40, width: int = 48, seed: int = 0):
    """(scene RGB uint8, free-shape mask bool, subject RGB uint8) with a textured scene."""
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), dtype=bool)
    mask[10:24, 12:30] = True
    subject = rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)
    return scene, mask, subject
