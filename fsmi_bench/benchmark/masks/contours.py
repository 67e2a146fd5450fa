"""Hand-drawn closed contours in the shape's unit frame.

Every contour is a float (N, 2) array of points (a, b) in order of increasing angle around the origin,
closed implicitly (the last point joins the first). The unit frame
maps onto the region's oriented box: a = -1..1 spans the box along u, b = -1..1 along v. Every contour
is star-shaped around the origin (each ray from the origin crosses it once), which is what lets an
``_open`` variant cut a gap by angle and keep one unbroken arc.

Each ``unit_*`` function draws its own random parameters from ``rng`` and returns them as numpy values
(made JSON-ready only for the draw that is kept: most draws are rejected).
"""

from __future__ import annotations

import numpy as np

# Dense enough that a 512-pixel shape has no visible facets (a point every ~8 px at most).
CONTOUR_POINTS = 192
# Radial wobble of a hurried hand: harmonics 2..4 of the angle, total amplitude up to 6 % of the size.
WOBBLE_HARMONICS = (2, 3, 4)
WOBBLE_MAX_AMPLITUDE = 0.06
# Polygon corners land up to this fraction of the unit half-size away from the ideal corner.
CORNER_JITTER_MAX = 0.12
# Irregular blob: r(phi) = 1 + sum_k a_k cos(k phi + p_k), k = 2..5, a_k <= BLOB_AMPLITUDE * 2 / k,
# so that r >= 1 - 0.3 * 2 * (1/2 + 1/3 + 1/4 + 1/5) > 0.2: always a star-shaped blob.
BLOB_HARMONICS = (2, 3, 4, 5)
BLOB_AMPLITUDE = 0.3


def angles_of(points: np.ndarray) -> np.ndarray:
    """Angle of each unit-frame point around the origin, degrees in [0, 360)."""
    return np.rad2deg(np.arctan2(points[:, 1], points[:, 0])) % 360.0


def unit_ellipse(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    angles = np.linspace(0.0, 2 * np.pi, CONTOUR_POINTS, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1), {}


def unit_rectangle(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    corners = np.array([[1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0]])
    return _jittered_polygon(corners, rng)


def unit_triangle(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    # Apex at -v, base along +v: fills half of the oriented box; the rotation points the apex anywhere.
    corners = np.array([[0.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    return _jittered_polygon(corners, rng)


def unit_blob(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    ks = np.array(BLOB_HARMONICS, dtype=np.float64)
    amplitudes = rng.uniform(0.0, BLOB_AMPLITUDE, size=ks.size) * 2.0 / ks
    phases = rng.uniform(0.0, 2 * np.pi, size=ks.size)
    angles = np.linspace(0.0, 2 * np.pi, CONTOUR_POINTS, endpoint=False)
    radius = 1.0 + (amplitudes[:, None] * np.cos(ks[:, None] * angles[None, :] + phases[:, None])).sum(axis=0)
    points = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    params = {"blob_amplitudes": amplitudes, "blob_phases_rad": phases}
    return points, params


def wobble(points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Scale each point's radius by 1 + sum_k A_k sin(k phi + psi_k): a smooth, closed hand tremor."""
    ks = np.array(WOBBLE_HARMONICS, dtype=np.float64)
    amplitudes = rng.uniform(0.0, WOBBLE_MAX_AMPLITUDE / ks.size, size=ks.size)
    phases = rng.uniform(0.0, 2 * np.pi, size=ks.size)
    phi = np.arctan2(points[:, 1], points[:, 0])
    factor = 1.0 + (amplitudes[:, None] * np.sin(ks[:, None] * phi[None, :] + phases[:, None])).sum(axis=0)
    params = {"wobble_amplitudes": amplitudes, "wobble_phases_rad": phases}
    return points * factor[:, None], params


def _jittered_polygon(corners: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    jitter = rng.uniform(-CORNER_JITTER_MAX, CORNER_JITTER_MAX, size=corners.shape)
    corners = corners + jitter
    following = np.concatenate([corners[1:], corners[:1]])
    lengths = np.sqrt(((following - corners) ** 2).sum(axis=1))
    ends = np.cumsum(lengths)
    # CONTOUR_POINTS points evenly spaced along the perimeter, plus every corner exactly.
    distances = np.concatenate([np.linspace(0.0, ends[-1], CONTOUR_POINTS, endpoint=False), ends[:-1]])
    edge = np.minimum(np.searchsorted(ends, distances, side="right"), len(corners) - 1)
    along = (distances - (ends[edge] - lengths[edge])) / lengths[edge]
    points = corners[edge] + along[:, None] * (following[edge] - corners[edge])
    # Order by angle so that every shape is ordered the same way (the contour is star-shaped).
    order = np.argsort(angles_of(points), kind="stable")
    return points[order], {"corner_jitter": jitter}
