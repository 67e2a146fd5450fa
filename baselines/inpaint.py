"""``inpaint``: classical inpainting of the marked area (OpenCV, Telea's fast marching method).

Meant for ``remove`` cases: the pixels under the mask are filled from their surroundings. For ``add`` and
``replace`` the same inpainting is done (the method has no way to draw an object), which makes it a
"clear the marked area" floor. A free-shape mask that misses part of the object leaves that part in place;
an open (outline) mask inpaints only the stroke, as a user drawing that stroke would get.

Config keys: ``radius`` (pixels around each filled pixel that are considered, default 5),
``algorithm`` ("telea", default, or "ns" for Navier-Stokes), ``dilate`` (grow the mask by this many
pixels first, default 0). Deterministic: no randomness is involved.
"""

from __future__ import annotations

import numpy as np

from fsmi_bench.errors import BadInputError
from fsmi_bench.run.method import EditRequest, Method
from fsmi_bench.run.option_types import check_option_types

ALGORITHMS = ("telea", "ns")


def inpaint_region(scene: np.ndarray, mask: np.ndarray, radius: float = 5.0, algorithm: str = "telea",
                   dilate: int = 0) -> np.ndarray:
    """Fill ``mask`` (bool (H, W), True = fill) of ``scene`` (RGB uint8 (H, W, 3)) from its surroundings."""
    import cv2

    if algorithm not in ALGORITHMS:
        raise BadInputError(f"inpaint algorithm {algorithm!r} is unknown (known: {', '.join(ALGORITHMS)})")
    mask_u8 = mask.astype(np.uint8) * 255
    if dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        mask_u8 = cv2.dilate(mask_u8, kernel)
    if not mask_u8.any():
        return scene.copy()
    flag = cv2.INPAINT_TELEA if algorithm == "telea" else cv2.INPAINT_NS
    # Inpainting treats the three channels alike, so RGB order needs no conversion.
    return cv2.inpaint(np.ascontiguousarray(scene), mask_u8, float(radius), flag)


class Inpaint(Method):
    """Inpaints the mask area of the scene for every case (see the module docstring). Needs no weights."""

    name = "inpaint"
    option_kinds = {"radius": "radius", "algorithm": "str", "dilate": "pixels"}

    def setup(self) -> None:
        check_option_types(self.config, self.option_kinds, self.name)

    def edit(self, request: EditRequest) -> np.ndarray:
        return inpaint_region(request.scene, request.mask, radius=float(self.config.get("radius", 5.0)),
                              algorithm=str(self.config.get("algorithm", "telea")),
                              dilate=int(self.config.get("dilate", 0)))
