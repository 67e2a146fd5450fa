"""``copy-paste``: the subject, cut out of its image, scaled into the mask's bounding box and pasted there.

Multi-image cases (a subject image is given):
1. Cut-out. When the benchmark gives the subject's true mask (``subject_mask``, every multi-image case
   of fsmi-edit-1.1), that mask is the cut-out, as AnyDoor and LAR-Gen get it for their reference
   (``use_subject_mask: false`` keys the subject out as below instead). Otherwise a "simple" subject sits
   on a plain background: the background colour is the median of the image border (``border`` px wide),
   and the background is every pixel within ``tolerance`` of that colour
   (largest channel difference) that is connected to the border, so object parts of the same colour
   inside the object are kept. A "complex" subject (its own, noisy background) is used whole by default
   (``complex_cutout: "whole"``) or cut with GrabCut from a centred box (``complex_cutout: "grabcut"``,
   the box leaves ``grabcut_margin`` of each side out). When the complexity is unknown, a border whose
   colours vary little (per-channel standard deviation under ``plain_border_std``) counts as plain. A
   cut-out of under 1% of the image means keying failed: the whole image is used.
2. The cut-out is cropped to its bounding box, scaled to fit the mask's bounding box keeping its aspect
   ratio (OpenCV area resampling when shrinking, bilinear when enlarging, on colours premultiplied by the
   cut-out mask so that no background bleeds into the edge), centred in that box, and pasted
   where its cut-out mask is set. An open (outline) mask has the box of its outline, so it works the same.

Single-image cases (no subject): ``remove`` inpaints the mask area (the ``inpaint`` method's Telea
inpainting, since removing is what copy-paste can do without a subject); ``add`` and ``replace`` return the
scene unchanged (there is nothing to paste). Multi-image ``remove`` cases, if any, are inpainted too.

Deterministic: GrabCut's random initialisation is seeded with the request's seed.
"""

from __future__ import annotations

import numpy as np

from baselines.inpaint import inpaint_region
from fsmi_bench.errors import BadInputError
from fsmi_bench.run.method import EditRequest, Method
from fsmi_bench.run.option_types import check_option_types

CUTOUT_MODES = ("whole", "grabcut")


def border_pixels(image: np.ndarray, width: int) -> np.ndarray:
    """The pixels of the ``width``-pixel frame of ``image``, shape (N, 3)."""
    height_px, width_px = image.shape[:2]
    width = max(1, min(width, height_px // 2, width_px // 2))
    frame = np.zeros((height_px, width_px), dtype=bool)
    frame[:width] = frame[-width:] = True
    frame[:, :width] = frame[:, -width:] = True
    return image[frame]


def border_is_plain(image: np.ndarray, border: int = 4, max_std: float = 12.0) -> bool:
    """True if the image frame is nearly one colour (per-channel standard deviation below ``max_std``)."""
    return bool(border_pixels(image, border).astype(np.float64).std(axis=0).max() < max_std)


def key_out_plain_background(image: np.ndarray, border: int = 4, tolerance: int = 24) -> np.ndarray:
    """Foreground mask (bool (H, W)) of an object on a plain background: everything except the
    background-coloured pixels connected to the image border."""
    import cv2

    background_colour = np.median(border_pixels(image, border), axis=0)
    difference = np.abs(image.astype(np.int16) - background_colour.astype(np.int16)).max(axis=2)
    background_like = (difference <= tolerance).astype(np.uint8)
    _, labels = cv2.connectedComponents(background_like, connectivity=4)
    # Label 0 is the non-background-like pixels; the other labels that reach the frame are background.
    touching = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, touching[touching != 0])
    return ~background


def grabcut_centre(image: np.ndarray, margin: float = 0.1, seed: int = 0, iterations: int = 5) -> np.ndarray:
    """Foreground mask (bool (H, W)) from OpenCV GrabCut started from a centred box."""
    import cv2

    height_px, width_px = image.shape[:2]
    x0, y0 = int(round(width_px * margin)), int(round(height_px * margin))
    rect = (x0, y0, max(1, width_px - 2 * x0), max(1, height_px - 2 * y0))
    labels = np.zeros((height_px, width_px), dtype=np.uint8)
    background_model = np.zeros((1, 65), dtype=np.float64)
    foreground_model = np.zeros((1, 65), dtype=np.float64)
    cv2.setRNGSeed(int(seed))  # GrabCut's k-means initialisation draws from OpenCV's global RNG
    bgr = np.ascontiguousarray(image[..., ::-1])
    cv2.grabCut(bgr, labels, rect, background_model, foreground_model, iterations, cv2.GC_INIT_WITH_RECT)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def cut_out_subject(subject: np.ndarray, complexity: str = "none", complex_cutout: str = "whole",
                    border: int = 4, tolerance: int = 24, plain_border_std: float = 12.0,
                    grabcut_margin: float = 0.1, seed: int = 0,
                    subject_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The subject cropped to its cut-out: (RGB uint8 (h, w, 3), bool (h, w) True = subject pixel).
    A ``subject_mask`` of the subject's size that is not empty is the cut-out; no keying is done."""
    if complex_cutout not in CUTOUT_MODES:
        raise BadInputError(f"complex_cutout {complex_cutout!r} is unknown (known: {', '.join(CUTOUT_MODES)})")
    if subject_mask is not None and subject_mask.shape == subject.shape[:2] and subject_mask.any():
        return _cropped(subject, subject_mask.astype(bool))
    plain = complexity == "simple" or (complexity not in ("simple", "complex")
                                       and border_is_plain(subject, border, plain_border_std))
    if plain:
        alpha = key_out_plain_background(subject, border, tolerance)
    elif complex_cutout == "grabcut":
        alpha = grabcut_centre(subject, grabcut_margin, seed)
    else:
        alpha = np.ones(subject.shape[:2], dtype=bool)
    if alpha.sum() < 0.01 * alpha.size:
        alpha = np.ones(subject.shape[:2], dtype=bool)
    return _cropped(subject, alpha)


def _cropped(subject: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return subject[crop].copy(), alpha[crop].copy()


def paste_into_box(scene: np.ndarray, cutout: np.ndarray, alpha: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scale ``cutout`` to fit the bounding box of ``mask`` (aspect ratio kept), centre it there and paste
    its ``alpha`` pixels into a copy of ``scene``. An empty mask returns the scene."""
    import cv2

    result = scene.copy()
    if not mask.any():
        return result
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box_x0, box_y0, box_width, box_height = cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]
    scale = min(box_width / cutout.shape[1], box_height / cutout.shape[0])
    new_width = max(1, min(box_width, int(round(cutout.shape[1] * scale))))
    new_height = max(1, min(box_height, int(round(cutout.shape[0] * scale))))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    weights = cv2.resize(alpha.astype(np.float32), (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    # Premultiplied by the cut-out mask, so that the subject's own background never bleeds into its edge.
    coverage = cv2.resize(alpha.astype(np.float32), (new_width, new_height), interpolation=interpolation)
    premultiplied = cv2.resize(cutout.astype(np.float32) * alpha[..., None], (new_width, new_height),
                               interpolation=interpolation)
    pixels = np.clip(np.rint(premultiplied / np.maximum(coverage, 1e-6)[..., None]), 0, 255).astype(np.uint8)
    x0 = box_x0 + (box_width - new_width) // 2
    y0 = box_y0 + (box_height - new_height) // 2
    target = result[y0:y0 + new_height, x0:x0 + new_width]
    keep = weights >= 0.5
    target[keep] = pixels[keep]
    return result


class CopyPaste(Method):
    """Copy-paste baseline (see the module docstring). Needs no weights.

    Config keys: ``use_subject_mask`` (default true), ``complex_cutout`` ("whole" or "grabcut"), ``border`` (px), ``tolerance`` (0..255),
    ``plain_border_std``, ``grabcut_margin`` (fraction of each side), ``inpaint_radius`` (px).
    """

    name = "copy-paste"
    option_kinds = {"use_subject_mask": "bool", "complex_cutout": "str", "border": "pixels", "tolerance": "int", "plain_border_std": "number",
                    "grabcut_margin": "number", "inpaint_radius": "radius"}

    def setup(self) -> None:
        check_option_types(self.config, self.option_kinds, self.name)

    def edit(self, request: EditRequest) -> np.ndarray:
        if request.subject is None or request.op == "remove":
            if request.op == "remove":
                return inpaint_region(request.scene, request.mask,
                                      radius=float(self.config.get("inpaint_radius", 5.0)))
            return request.scene.copy()
        cutout, alpha = cut_out_subject(
            request.subject, request.complexity,
            complex_cutout=str(self.config.get("complex_cutout", "whole")),
            border=int(self.config.get("border", 4)), tolerance=int(self.config.get("tolerance", 24)),
            plain_border_std=float(self.config.get("plain_border_std", 12.0)),
            grabcut_margin=float(self.config.get("grabcut_margin", 0.1)), seed=request.seed,
            subject_mask=request.subject_mask if self.config.get("use_subject_mask", True) else None)
        return paste_into_box(request.scene, cutout, alpha, request.mask)
