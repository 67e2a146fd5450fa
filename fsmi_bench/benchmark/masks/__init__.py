"""Free-shape mask generators: what a hurried user draws over the region to edit.

Public API::

    from fsmi_bench.benchmark.masks import MASK_CONDITIONS, FREE_SHAPE_TYPES, TRAINING_TYPES, generate_mask, MaskResult
    result = generate_mask("circle_open", edit_region, seed=7)   # -> MaskResult

Conventions: masks and regions are bool (H, W) arrays, True = region to edit / pixels marked.
A result depends only on (mask_type, region, seed): each type draws from
``np.random.default_rng([seed, index of the type in ALL_MASK_TYPES])``, so the types of one case draw
independent parameters and adding a case never changes another. See ``README.md`` here for every
generator's parameter ranges and the overlap band.

Importing this package is cheap (no numpy); generators are imported on first use through
``MASK_GENERATORS``, a registry with lazy targets.
"""

from __future__ import annotations

from fsmi_bench.benchmark.masks.result import MaskResult
from fsmi_bench.errors import BadInputError
from fsmi_bench.registry import Registry
from fsmi_bench.schema import ALL_MASK_TYPES, FREE_SHAPE_TYPES, MASK_CONDITIONS, TRAINING_TYPES  # noqa: F401

# The mask vocabulary lives in fsmi_bench.schema; re-exported here for the generators' users.

MASK_GENERATORS = Registry("mask type")
MASK_GENERATORS.register("full", "fsmi_bench.benchmark.masks.full:full_region", "the edit region itself (the paper's full mask)")
for _shape in ("circle", "rectangle", "triangle", "irregular"):
    MASK_GENERATORS.register(
        _shape, f"fsmi_bench.benchmark.masks.free_shapes:{_shape}", f"a rough filled {_shape} over the region"
    )
    MASK_GENERATORS.register(
        f"{_shape}_open",
        f"fsmi_bench.benchmark.masks.free_shapes:{_shape}_open",
        f"a rough {_shape} outline around the region, left open",
    )
MASK_GENERATORS.register(
    "random_walk", "fsmi_bench.benchmark.masks.random_walk:random_walk", "brush scribble by a random walk inside the object"
)
del _shape


def generate_mask(mask_type: str, region, seed: int) -> MaskResult:
    """Draw the mask of type ``mask_type`` for the edit region ``region`` with ``seed``.

    region: bool (H, W) edit region, True = pixels to edit, not empty (integer arrays: non-zero = True).
    seed: a non-negative int (the case's seed).
    Returns a MaskResult whose mask is bool (H, W), never empty. Same inputs -> byte-identical mask.
    Raises BadInputError for an unknown type, an empty or non-2-D region, or a bad seed.
    """
    import cv2
    import numpy as np

    generator = MASK_GENERATORS.get(mask_type)  # BadInputError with did-you-mean when unknown
    region = _checked_region(region)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BadInputError(f"mask seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([int(seed), ALL_MASK_TYPES.index(mask_type)])
    mask, params = generator(region, rng)
    # cv2 counts on the uint8 views: several times faster than numpy on full-size bool images.
    mask_u8, region_u8 = mask.view(np.uint8), region.view(np.uint8)
    intersection = cv2.countNonZero(cv2.bitwise_and(mask_u8, region_u8))
    region_area = cv2.countNonZero(region_u8)
    union = cv2.countNonZero(mask_u8) + region_area - intersection
    return MaskResult(
        mask=mask,
        params={"type": mask_type, **params},
        iou=intersection / union,
        coverage=intersection / region_area,
    )


def _checked_region(region):
    import numpy as np

    if not isinstance(region, np.ndarray):
        raise BadInputError(f"edit region must be a numpy array, got {type(region).__name__}")
    if region.ndim != 2:
        raise BadInputError(f"edit region must be 2-D (H, W), got shape {region.shape}")
    if region.dtype != bool:
        if not (np.issubdtype(region.dtype, np.integer) or np.issubdtype(region.dtype, np.floating)):
            raise BadInputError(f"edit region must be a bool array, got dtype {region.dtype}")
        region = region != 0
    region = np.ascontiguousarray(region)
    if not np.any(region):
        raise BadInputError(f"edit region is empty (no True pixel in a {region.shape[0]}x{region.shape[1]} mask)")
    return region


__all__ = [
    "ALL_MASK_TYPES",
    "FREE_SHAPE_TYPES",
    "MASK_CONDITIONS",
    "MASK_GENERATORS",
    "MaskResult",
    "TRAINING_TYPES",
    "generate_mask",
]
