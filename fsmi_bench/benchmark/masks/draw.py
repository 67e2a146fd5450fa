"""Draw a mask over a scene for contact sheets and galleries."""

from __future__ import annotations

import cv2
import numpy as np

from fsmi_bench.errors import BadInputError

FILL_OPACITY = 0.35
OUTLINE_WIDTH_PX = 2


def overlay_masks_on_scene(scene: np.ndarray, mask: np.ndarray, color=(255, 64, 64)) -> np.ndarray:
    """The scene with ``mask`` shown as a semi-transparent fill and a solid 2-px outline.

    scene: RGB uint8 (H, W, 3). mask: bool (H, W), True = marked pixels. color: RGB of fill and outline.
    Returns a new RGB uint8 (H, W, 3) image; pixels outside the mask and away from its outline are
    unchanged. The outline is drawn inside the mask's edge (pixels of the mask within 2 px of its border),
    so thin strokes stay visible and nothing is drawn outside the mask.
    """
    if scene.ndim != 3 or scene.shape[2] != 3 or scene.dtype != np.uint8:
        raise BadInputError(f"scene must be RGB uint8 (H, W, 3), got {scene.dtype} {scene.shape}")
    if mask.shape != scene.shape[:2]:
        raise BadInputError(f"mask shape {mask.shape} does not match scene size {scene.shape[:2]}")
    mask = mask.astype(bool, copy=False)
    color_array = np.array(color, dtype=np.float32)
    output = scene.copy()
    blended = scene[mask].astype(np.float32) * (1 - FILL_OPACITY) + color_array * FILL_OPACITY
    output[mask] = np.round(blended).astype(np.uint8)
    # Outline = mask minus its erosion by a (2 * width + 1) square: the band of the mask along its border.
    kernel = np.ones((2 * OUTLINE_WIDTH_PX + 1, 2 * OUTLINE_WIDTH_PX + 1), dtype=np.uint8)
    mask_u8 = np.ascontiguousarray(mask).view(np.uint8)
    eroded = cv2.erode(mask_u8, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    outline = mask_u8 > eroded
    output[outline] = np.array(color, dtype=np.uint8)
    return output
