"""Geometry of an edit region that the shape generators aim at.

Coordinates are image pixels: x to the right, y down, pixel (row i, column j) has its centre at
(x=j, y=i). Angles are degrees, measured from the +x axis towards +y (clockwise on screen).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, eq=False)
class RegionGeometry:
    """What the generators need to know about a bool (H, W) edit region, computed once per mask.

    region_u8: the region as uint8 0/1 (H, W), a view shared with the caller's bool array.
    area: number of region pixels.
    bbox: (x0, y0, x1, y1), half-open pixel box of the region.
    hull_xy: float (K, 2) convex-hull corners of the region's pixel squares, in (x, y).
    long_axis_deg: direction of the long side of the region's minimum-area rectangle, in [0, 180).
    elongation: short side / long side of that rectangle, in (0, 1]; 1 = as wide as long.
    """

    region_u8: np.ndarray
    area: int
    bbox: tuple[int, int, int, int]
    hull_xy: np.ndarray
    long_axis_deg: float
    elongation: float

    @property
    def height(self) -> int:
        return self.region_u8.shape[0]

    @property
    def width(self) -> int:
        return self.region_u8.shape[1]


def region_geometry(region: np.ndarray) -> RegionGeometry:
    """Geometry of a non-empty bool (H, W) region (checked by the caller)."""
    region_u8 = region.view(np.uint8)
    x0, y0, box_width, box_height = cv2.boundingRect(region_u8)
    x1, y1 = x0 + box_width, y0 + box_height
    window = region_u8[y0:y1, x0:x1]
    # Hull of pixel centres, widened by half a pixel on each side, so that a one-pixel-wide region
    # still has a width of one pixel along every direction.
    # The hull of the outer boundary is the hull of the region, from far fewer points than all pixels.
    boundaries, _ = cv2.findContours(np.ascontiguousarray(window), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(boundaries)).reshape(-1, 2).astype(np.float64) + (x0, y0)
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    hull_xy = (hull[:, None, :] + corners[None, :, :]).reshape(-1, 2)
    _, (side_a, side_b), angle_deg = cv2.minAreaRect(hull_xy.astype(np.float32))
    long_axis_deg = (angle_deg if side_a >= side_b else angle_deg + 90.0) % 180.0
    elongation = min(side_a, side_b) / max(side_a, side_b)
    area = int(cv2.countNonZero(window))
    return RegionGeometry(region_u8, area, (x0, y0, x1, y1), hull_xy, float(long_axis_deg), float(elongation))


def oriented_box(geometry: RegionGeometry, rotation_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The region's bounding box in a frame rotated by ``rotation_deg``.

    Returns (centre_xy, extents, axes): the box centre in image (x, y), its full extents (along u, along v)
    in pixels, and axes = [u, v] as unit row vectors in image coordinates.
    """
    angle = np.deg2rad(rotation_deg)
    axes = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    projected = geometry.hull_xy @ axes.T
    low, high = projected.min(axis=0), projected.max(axis=0)
    centre_xy = ((low + high) / 2) @ axes
    return centre_xy, high - low, axes


def overlap(shape_u8: np.ndarray, geometry: RegionGeometry, origin_xy: tuple[int, int]) -> tuple[float, float, int]:
    """IoU and coverage of a shape drawn in a window of the image with the whole region.

    shape_u8: uint8 0/1 window whose top-left pixel is ``origin_xy`` = (x, y) in the image.
    Region pixels outside the window count in the union, not in the intersection.
    Returns (iou, coverage of the region, shape area in pixels).
    """
    x, y = origin_xy
    height, width = shape_u8.shape
    region_window = geometry.region_u8[y : y + height, x : x + width]
    intersection = cv2.countNonZero(cv2.bitwise_and(shape_u8, region_window))
    shape_area = cv2.countNonZero(shape_u8)
    union = shape_area + geometry.area - intersection
    return intersection / union, intersection / geometry.area, shape_area
