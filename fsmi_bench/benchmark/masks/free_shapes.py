"""The 8 free-shape generators: a rough circle, rectangle, triangle or blob over the edit region,
filled or drawn as an open outline.

How one mask is drawn (every range is a module constant below, documented in README.md):

1. rotation_deg ~ U[0, 360). The shape's frame (u, v) is rotated by it; the region's bounding box in
   that frame gives the extents (e_u, e_v) and the box centre a user aims at. Elongated regions
   (elongation = short / long side of the minimum-area rectangle < ELONGATED_BELOW) instead draw
   rotation_deg = long axis + k * 90 + N(0, ALIGNED_JITTER_DEG), k uniform in 0..3: a user draws along a
   pen or a bar, and a uniform draw would be rejected ~85 % of the time, to accept about that same
   distribution. ``rotation_proposal`` records which one was used.
2. scale ~ U[SCALE_RANGE], aspect ~ U[ASPECT_RANGE]; the shape's half-sizes are
   SHAPE_FACTOR[shape] * scale * e / 2 (aspect stretches u and shrinks v), at least MIN_SHAPE_SIZE_PX / 2.
3. offset ~ U[OFFSET_RANGE] along u and along v, as a fraction of (e_u, e_v).
4. The contour (``contours.py``) gets corner jitter or random harmonics, then a smooth radial wobble.
5. ``_open`` only: stroke width = stroke_frac * sqrt(size_u * size_v), stroke_frac ~ U[STROKE_FRAC_RANGE],
   clipped to [MIN_STROKE_PX, min(size) / 5]; a gap of gap_deg ~ U[GAP_DEG_RANGE] at
   gap_start_deg ~ U[0, 360) (angles in the unit frame, around the shape's centre) is cut out of the
   contour (widened in steps of 10 deg, up to MAX_GAP_DEG, until the gap's chord is at least
   2 * stroke + 3 px, so round stroke ends never close it), and the rest is drawn as an open polyline.

Acceptance (rejection sampling, at most MAX_ATTEMPTS draws): the *filled* shape (for ``_open``, the
interior its contour encloses) has IoU with the region in OVERLAP_BAND; an ``_open`` shape must also have
at least MIN_VISIBLE_FRACTION of its outline inside the image, so the loop stays recognisable. The first
accepted draw is used; ``attempts`` records how many were made.

Fallback when no draw is accepted (objects thinner or smaller than the smallest drawable shape, and
``_open`` outlines around objects that fill most of the image): the draw closest to the band (smallest
IoU distance to it; any draw with its outline visible enough before any without; the first on ties),
recorded with ``accepted: false`` (``band_met`` says whether its IoU is nonetheless in the band). If even
that mask were empty (a shape wholly off the image), a disc of MIN_SHAPE_SIZE_PX is drawn on the region
pixel nearest the region's box centre (``fallback: "disc"``), so a mask is never empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fsmi_bench.benchmark.masks import contours
from fsmi_bench.benchmark.masks.geometry import RegionGeometry, oriented_box, overlap, region_geometry
from fsmi_bench.benchmark.masks.result import json_ready

OVERLAP_BAND = (0.3, 0.85)  # IoU of the filled shape with the edit region
MAX_ATTEMPTS = 32
SCALE_RANGE = (0.75, 1.3)
ASPECT_RANGE = (0.85, 1.15)
OFFSET_RANGE = (-0.2, 0.2)
MIN_SHAPE_SIZE_PX = 16.0  # nobody draws a smaller loop with a pen or a mouse
# Half-size of each unit contour relative to the region's oriented half-extent at scale 1: an ellipse
# through the box's corner region, a box, a triangle wide enough to hold the box's middle, a blob.
SHAPE_FACTOR = {"circle": 1.2, "rectangle": 1.0, "triangle": 1.45, "irregular": 1.15}
UNIT_CONTOURS = {
    "circle": contours.unit_ellipse,
    "rectangle": contours.unit_rectangle,
    "triangle": contours.unit_triangle,
    "irregular": contours.unit_blob,
}
STROKE_FRAC_RANGE = (0.03, 0.08)
MIN_STROKE_PX = 3
GAP_DEG_RANGE = (25.0, 60.0)
GAP_WIDEN_STEP_DEG = 10.0
MAX_GAP_DEG = 120.0
MIN_VISIBLE_FRACTION = 0.6
ELONGATED_BELOW = 0.35
ALIGNED_JITTER_DEG = 8.0
SUBPIXEL_SHIFT = 4  # cv2 fixed-point bits: contour vertices placed to 1/16 px
_SUBPIXEL = float(1 << SUBPIXEL_SHIFT)


@dataclass(frozen=True, eq=False)
class _Draw:
    """One candidate shape: its contour in image (x, y) and the overlap of the filled shape."""

    contour_xy: np.ndarray
    unit_angles_deg: np.ndarray
    params: dict
    filled_window: np.ndarray  # uint8 0/1
    origin_xy: tuple[int, int]
    filled_iou: float
    filled_coverage: float
    visible_fraction: float
    size_px: tuple[float, float]


@dataclass(frozen=True)
class FreeShapeGenerator:
    """Generator of one free-shape type: ``shape`` in UNIT_CONTOURS, filled or as an open outline."""

    shape: str
    open_outline: bool

    def __call__(self, region: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        return draw_free_shape(region, rng, self.shape, self.open_outline)


def draw_free_shape(
    region: np.ndarray, rng: np.random.Generator, shape: str, open_outline: bool
) -> tuple[np.ndarray, dict]:
    """Draw a free-shape mask over the bool (H, W) ``region``; returns (bool (H, W) mask, params)."""
    geometry = region_geometry(region)
    best, best_distance, attempts = None, np.inf, 0
    for attempts in range(1, MAX_ATTEMPTS + 1):
        candidate = _draw_candidate(geometry, rng, shape)
        if candidate is None:
            continue
        distance = _band_distance(candidate, open_outline)
        if distance < best_distance:
            best, best_distance = candidate, distance
        if distance == 0.0:
            break

    mask = np.zeros(region.shape, dtype=bool)
    params: dict = {}
    if best is not None:
        params.update(json_ready(best.params))
        if open_outline:
            params.update(_draw_open_outline(best, rng, mask))
        else:
            x, y = best.origin_xy
            height, width = best.filled_window.shape
            mask[y : y + height, x : x + width] = best.filled_window.view(bool)
        params["filled_iou"] = round(best.filled_iou, 6)
        params["filled_coverage"] = round(best.filled_coverage, 6)
    params.update(
        {
            "attempts": attempts,
            "band": list(OVERLAP_BAND),
            "band_metric": "filled_iou",
            "band_met": bool(best is not None and OVERLAP_BAND[0] <= best.filled_iou <= OVERLAP_BAND[1]),
            "accepted": bool(best_distance == 0.0),
        }
    )
    if not mask.any():
        params.update(_draw_fallback_disc(geometry, mask))
    return mask, params


def _draw_candidate(geometry: RegionGeometry, rng: np.random.Generator, shape: str) -> _Draw | None:
    aligned = geometry.elongation < ELONGATED_BELOW
    if aligned:
        quarter_turns = int(rng.integers(0, 4))
        jitter_deg = float(rng.normal(0.0, ALIGNED_JITTER_DEG))
        rotation_deg = (geometry.long_axis_deg + 90.0 * quarter_turns + jitter_deg) % 360.0
    else:
        rotation_deg = float(rng.uniform(0.0, 360.0))
    scale = float(rng.uniform(*SCALE_RANGE))
    aspect = float(rng.uniform(*ASPECT_RANGE))
    offset = rng.uniform(*OFFSET_RANGE, size=2)
    unit_points, shape_params = UNIT_CONTOURS[shape](rng)
    unit_points, wobble_params = contours.wobble(unit_points, rng)

    box_centre, extents, axes = oriented_box(geometry, rotation_deg)
    half_sizes = SHAPE_FACTOR[shape] * scale * extents / 2 * np.array([np.sqrt(aspect), 1 / np.sqrt(aspect)])
    half_sizes = np.maximum(half_sizes, MIN_SHAPE_SIZE_PX / 2)
    centre = box_centre + (offset * extents) @ axes
    contour_xy = centre + (unit_points * half_sizes) @ axes

    height, width = geometry.height, geometry.width
    x0 = max(int(np.floor(contour_xy[:, 0].min())), 0)
    y0 = max(int(np.floor(contour_xy[:, 1].min())), 0)
    x1 = min(int(np.ceil(contour_xy[:, 0].max())) + 1, width)
    y1 = min(int(np.ceil(contour_xy[:, 1].max())) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None  # wholly off the image
    window = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    fixed_point = np.round((contour_xy - (x0, y0)) * _SUBPIXEL).astype(np.int32)
    cv2.fillPoly(window, [fixed_point], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_SHIFT)
    filled_iou, filled_coverage, area = overlap(window, geometry, (x0, y0))
    if area == 0:
        return None
    inside = (
        (contour_xy[:, 0] >= -0.5) & (contour_xy[:, 0] <= width - 0.5)
        & (contour_xy[:, 1] >= -0.5) & (contour_xy[:, 1] <= height - 0.5)
    )
    params = {
        "rotation_deg": rotation_deg,
        "rotation_proposal": "aligned" if aligned else "uniform",
        "scale": scale,
        "aspect": aspect,
        "offset": offset,
        "shape_factor": SHAPE_FACTOR[shape],
        "centre_xy": centre,
        "size_px": 2 * half_sizes,
        **shape_params,
        **wobble_params,
    }
    return _Draw(
        contour_xy=contour_xy,
        unit_angles_deg=contours.angles_of(unit_points),
        params=params,
        filled_window=window,
        origin_xy=(x0, y0),
        filled_iou=filled_iou,
        filled_coverage=filled_coverage,
        visible_fraction=float(inside.mean()),
        size_px=(float(2 * half_sizes[0]), float(2 * half_sizes[1])),
    )


def _band_distance(candidate: _Draw, open_outline: bool) -> float:
    low, high = OVERLAP_BAND
    distance = max(low - candidate.filled_iou, candidate.filled_iou - high, 0.0)
    if open_outline and candidate.visible_fraction < MIN_VISIBLE_FRACTION:
        # An outline mostly off the image is worse than any overlap miss.
        distance += 1.0 + MIN_VISIBLE_FRACTION - candidate.visible_fraction
    return distance


def _draw_open_outline(candidate: _Draw, rng: np.random.Generator, mask: np.ndarray) -> dict:
    """Draw the candidate's contour as a stroke with a gap into ``mask``; returns the stroke's params."""
    size_u, size_v = candidate.size_px
    stroke_frac = float(rng.uniform(*STROKE_FRAC_RANGE))
    stroke_width = int(round(stroke_frac * np.sqrt(size_u * size_v)))
    stroke_width = max(MIN_STROKE_PX, min(stroke_width, int(min(size_u, size_v) / 5)))
    gap_deg = float(rng.uniform(*GAP_DEG_RANGE))
    gap_start_deg = float(rng.uniform(0.0, 360.0))

    while True:
        arc = _arc_outside_gap(candidate, gap_start_deg, gap_deg)
        chord = float(np.linalg.norm(arc[0] - arc[-1]))
        if chord >= 2 * stroke_width + 3 or gap_deg >= MAX_GAP_DEG:
            break
        gap_deg = min(gap_deg + GAP_WIDEN_STEP_DEG, MAX_GAP_DEG)

    height, width = mask.shape
    pad = stroke_width
    x0 = max(int(np.floor(arc[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(arc[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(arc[:, 0].max())) + pad + 1, width)
    y1 = min(int(np.ceil(arc[:, 1].max())) + pad + 1, height)
    if x1 > x0 and y1 > y0:
        window = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        fixed_point = np.round((arc - (x0, y0)) * _SUBPIXEL).astype(np.int32)
        cv2.polylines(
            window, [fixed_point], False, 1, thickness=stroke_width, lineType=cv2.LINE_8, shift=SUBPIXEL_SHIFT
        )
        mask[y0:y1, x0:x1] = window.view(bool)
    return {
        "stroke_frac": round(stroke_frac, 6),
        "stroke_width_px": stroke_width,
        "gap_deg": round(gap_deg, 6),
        "gap_start_deg": round(gap_start_deg, 6),
        "gap_chord_px": round(chord, 6),
        "gap_ends_xy": json_ready([arc[-1], arc[0]]),
        "visible_fraction": round(candidate.visible_fraction, 6),
    }


def _arc_outside_gap(candidate: _Draw, gap_start_deg: float, gap_deg: float) -> np.ndarray:
    """Contour points outside the angular gap, in drawing order, starting just after the gap."""
    relative = (candidate.unit_angles_deg - gap_start_deg) % 360.0
    keep = relative >= gap_deg
    # Contour points are ordered by angle, so the kept ones form one run once rolled to start after the gap.
    order = np.argsort(relative[keep], kind="stable")
    return candidate.contour_xy[keep][order]


def _draw_fallback_disc(geometry: RegionGeometry, mask: np.ndarray) -> dict:
    x0, y0, x1, y1 = geometry.bbox
    rows, columns = np.nonzero(geometry.region_u8[y0:y1, x0:x1])
    target = ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2)
    nearest = int(np.argmin((columns + x0 - target[0]) ** 2 + (rows + y0 - target[1]) ** 2))
    centre = (int(columns[nearest] + x0), int(rows[nearest] + y0))
    window = mask.view(np.uint8)
    cv2.circle(window, centre, int(MIN_SHAPE_SIZE_PX / 2), 1, thickness=-1, lineType=cv2.LINE_8)
    return {"fallback": "disc", "centre_xy": list(centre), "size_px": [MIN_SHAPE_SIZE_PX, MIN_SHAPE_SIZE_PX]}


circle = FreeShapeGenerator("circle", open_outline=False)
circle_open = FreeShapeGenerator("circle", open_outline=True)
rectangle = FreeShapeGenerator("rectangle", open_outline=False)
rectangle_open = FreeShapeGenerator("rectangle", open_outline=True)
triangle = FreeShapeGenerator("triangle", open_outline=False)
triangle_open = FreeShapeGenerator("triangle", open_outline=True)
irregular = FreeShapeGenerator("irregular", open_outline=False)
irregular_open = FreeShapeGenerator("irregular", open_outline=True)
