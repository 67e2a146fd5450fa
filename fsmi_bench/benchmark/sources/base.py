"""What a source gives the benchmark builder.

A source offers either compositing material (scene photos, and objects cut from real photos with
their real masks) from which ``fsmi build`` makes cases, or ready-made cases (the FSMI folder
format and exported benchmarks), which the builder only checks and copies.

Conventions: images are RGB ``uint8`` arrays (H, W, 3); masks are ``bool`` arrays (H, W) of the
same photo's size, True = the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class ScenePhoto:
    """A photo that can serve as the background of a case."""

    photo_id: str  # unique within the source; objects from the same photo share it
    image: np.ndarray
    scenario: str  # "indoor" or "outdoor"
    origin: str  # where the photo comes from and its licence
    # the largest size class of object that could stand in it (fsmi_bench.benchmark.compose.SIZE_CLASSES):
    # "small" for a close-up of a table or a bin, "medium" for a room, "large" for an open view
    holds: str = "large"


@dataclass(frozen=True, eq=False)
class ObjectInstance:
    """An object in a real photo, with its real mask and class label."""

    object_id: str  # unique within the source
    photo_id: str  # the photo it is in: a case never takes scene and subject from the same photo
    label: str  # class name, used in instructions and as CLIP-T text
    image: np.ndarray  # the whole photo
    mask: np.ndarray  # the object's mask in that photo
    origin: str
    # size class ("small": hand-held things, "medium": people, animals, furniture, "large": buildings,
    # vehicles), which sets its plausible height in a scene (fsmi_bench.benchmark.compose.HEIGHT_RANGES)
    size: str = "medium"

    def bbox(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the mask, x1 and y1 exclusive."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        cols = np.flatnonzero(self.mask.any(axis=0))
        return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@dataclass(frozen=True, eq=False)
class PreparedCase:
    """A finished case (hand-made or imported): the builder adds the free-shape masks it lacks."""

    case_id: str
    kind: str  # "single" or "multi"
    op: str
    scenario: str
    complexity: str  # "simple" / "complex" for multi, "none" for single
    instruction: str
    label: str
    clip_text: str
    scene: np.ndarray
    gt: np.ndarray
    region: np.ndarray  # bool: the pixels the edit changes
    subject: np.ndarray | None = None
    masks: dict = field(default_factory=dict)  # mask_type -> bool array, when the user drew them
    origin: str = ""
    subject_mask: np.ndarray | None = None  # bool, True = the object's pixels in ``subject``, when known


@dataclass
class SourceContent:
    """Everything a source offers. ``card`` is Markdown describing origins and licences."""

    name: str
    card: str
    scenes: list[ScenePhoto] = field(default_factory=list)
    objects: list[ObjectInstance] = field(default_factory=list)
    cases: list[PreparedCase] = field(default_factory=list)
