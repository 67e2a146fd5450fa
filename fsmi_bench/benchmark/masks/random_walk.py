"""``random_walk``: the training-time degradation m = W(m_o) of FlexEdit (paper Sec. 3.3).

The paper turns each true object mask m_o into a free-shape mask "by a simple random walking
algorithm W". Here W is a brush scribble: start on a random pixel of the object, walk with momentum in
steps proportional to the object's size, staying on the object (a step whose end or midpoint would leave
it is re-drawn, first near the current heading, then in any direction), and paint the path with a round
brush. The result covers part of the object, the way a user scribbles over it.

Ranges (all uniform; size = sqrt(object area) in pixels):
- steps: integer in [STEPS_RANGE]; step length = step_frac * size, step_frac in [STEP_FRAC_RANGE], >= 1 px
- heading: first uniform in [0, 360); then previous heading + N(0, turn_sigma_deg), turn_sigma_deg in
  [TURN_SIGMA_DEG_RANGE]; up to MAX_TRIES_PER_STEP tries per step, the later ones uniform in [0, 360);
  a step with no valid try is skipped (the walk stays put)
- "on the object" = at least MIN_DEPTH_FRACTION * brush radius inside the object's edge, so the brush
  hardly spills out; for objects thinner than THIN_BELOW_PX (inscribed radius), within
  ON_OBJECT_TOLERANCE * brush radius of an object pixel instead, so one-pixel-wide objects can be walked
- brush radius = brush_frac * size, brush_frac in [BRUSH_FRAC_RANGE], clipped to
  [1, max(1, largest inscribed radius of the object)] so the brush is never much wider than the object.
"""

from __future__ import annotations

import cv2
import numpy as np

from fsmi_bench.benchmark.masks.geometry import region_geometry
from fsmi_bench.benchmark.masks.result import json_ready

STEPS_RANGE = (10, 30)
STEP_FRAC_RANGE = (0.08, 0.2)
TURN_SIGMA_DEG_RANGE = (20.0, 60.0)
BRUSH_FRAC_RANGE = (0.05, 0.12)
MAX_TRIES_PER_STEP = 8
MIN_DEPTH_FRACTION = 0.75
THIN_BELOW_PX = 2.0
ON_OBJECT_TOLERANCE = 0.5


def random_walk(region: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Scribble over the bool (H, W) object mask ``region``; returns (bool (H, W) mask, params)."""
    geometry = region_geometry(region)
    height, width = region.shape
    size = float(np.sqrt(geometry.area))
    steps = int(rng.integers(STEPS_RANGE[0], STEPS_RANGE[1] + 1))
    step_frac = float(rng.uniform(*STEP_FRAC_RANGE))
    turn_sigma_deg = float(rng.uniform(*TURN_SIGMA_DEG_RANGE))
    brush_frac = float(rng.uniform(*BRUSH_FRAC_RANGE))
    step_px = max(1.0, step_frac * size)

    # Work in the object's box, padded so that the brush and the "outside" of the object fit in it.
    x0, y0, x1, y1 = geometry.bbox
    pad = int(np.ceil(BRUSH_FRAC_RANGE[1] * size)) + 2
    wx0, wy0, wx1, wy1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, width), min(y1 + pad, height)
    object_window = np.ascontiguousarray(geometry.region_u8[wy0:wy1, wx0:wx1])
    depth = cv2.distanceTransform(object_window, cv2.DIST_L2, 3)  # inside: distance to the background
    inscribed_radius = float(depth.max())
    brush_radius = int(np.clip(round(brush_frac * size), 1, max(1.0, round(inscribed_radius))))
    # Signed distance to the object's edge: positive inside, negative outside.
    signed_depth = depth - cv2.distanceTransform(1 - object_window, cv2.DIST_L2, 3)
    if inscribed_radius >= THIN_BELOW_PX:
        # Keep the brush centre deep enough that the brush hardly spills past the edge.
        min_depth = MIN_DEPTH_FRACTION * brush_radius
    else:
        # Too thin to keep the centre inside: stay within a fraction of the brush of an object pixel.
        min_depth = -ON_OBJECT_TOLERANCE * brush_radius

    def on_object(point: np.ndarray) -> bool:
        column, row = int(np.floor(point[0] + 0.5)) - wx0, int(np.floor(point[1] + 0.5)) - wy0
        inside_window = 0 <= row < object_window.shape[0] and 0 <= column < object_window.shape[1]
        return inside_window and signed_depth[row, column] >= min_depth

    object_pixels = np.flatnonzero(object_window)
    start = int(object_pixels[rng.integers(object_pixels.size)])
    position = np.array([start % object_window.shape[1] + wx0, start // object_window.shape[1] + wy0], dtype=np.float64)
    heading = float(rng.uniform(0.0, 360.0))
    # Every random number of the walk is drawn up front: fewer calls, and a fixed use of the stream.
    turns = rng.normal(0.0, turn_sigma_deg, size=(steps, MAX_TRIES_PER_STEP // 2))
    fresh_headings = rng.uniform(0.0, 360.0, size=(steps, MAX_TRIES_PER_STEP - MAX_TRIES_PER_STEP // 2))
    path = [position]
    for step_index in range(steps):
        # Momentum first; after a few refusals the walker turns anywhere (it reached an edge).
        proposals = np.concatenate([heading + turns[step_index], fresh_headings[step_index]])
        radians = np.deg2rad(proposals)
        steps_xy = step_px * np.stack([np.cos(radians), np.sin(radians)], axis=1)
        for proposal, step in zip(proposals.tolist(), steps_xy):
            if on_object(position + step) and on_object(position + step / 2):
                position = position + step
                heading = proposal % 360.0
                path.append(position)
                break

    path_xy = np.array(path)
    mask = np.zeros(region.shape, dtype=bool)
    canvas = mask.view(np.uint8)
    fixed_point = np.round(path_xy * 16).astype(np.int32)
    # Thick cv2 lines have round ends, so a one-point path is a disc; polylines joins segments smoothly.
    cv2.polylines(canvas, [fixed_point], False, 1, thickness=2 * brush_radius + 1, lineType=cv2.LINE_8, shift=4)
    if len(path) == 1:
        cv2.circle(canvas, (int(round(path_xy[0, 0])), int(round(path_xy[0, 1]))), brush_radius, 1, -1)
    return mask, {
        "object_size_px": round(size, 3),
        "steps": steps,
        "steps_taken": len(path) - 1,
        "step_frac": round(step_frac, 6),
        "step_px": round(step_px, 3),
        "turn_sigma_deg": round(turn_sigma_deg, 4),
        "brush_frac": round(brush_frac, 6),
        "brush_radius_px": brush_radius,
        "start_xy": [int(path_xy[0, 0]), int(path_xy[0, 1])],
        "path_xy": json_ready(path_xy, digits=3),
    }
