"""Objects and scenes decoded only when an example draws them, for sources too large to hold in memory.

A streamed source keeps an index (ids, labels, where each image is) and hands out ``LazyObject`` /
``LazyScene`` records that decode their photo and mask on first use, at most ``working_side`` pixels on
their long side (what ``TrainingExamples`` would shrink them to anyway). ``PooledExamples`` makes example
``i`` with ``TrainingExamples``' recipe from a small pool of such records drawn for ``i`` alone: only the
pool's photos are decoded, so memory does not grow with the number of photos, and example ``i`` is
still a pure function of (index, seed, i), resumable and shardable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from fsmi_bench.benchmark.sources.base import ObjectInstance, SourceContent
from fsmi_bench.errors import BadInputError

# Keeps the choice of a pool in a seed stream apart from the examples' own draws.
POOL_SEED_OFFSET = 52_711_000
POOL_OBJECTS = 6  # objects of other photos for pasting and compositing: enough for replace cases' two labels
POOL_SCENES = 3
POOL_TRIES = 8  # pools to try when compositing finds no fitting object in one
# What fsmi_bench.benchmark.builder.composite_case says when a pool holds no object it can use.
UNFIT_POOL_MESSAGES = ("has no object that fits photo", "needs objects of two classes")


def shrink_photo(image: np.ndarray, long_side: int) -> np.ndarray:
    from fsmi_bench.benchmark.compose import long_side_to

    return long_side_to(image, long_side) if max(image.shape[:2]) > long_side else image


@dataclass(eq=False)
class LazyScene:
    """A ``ScenePhoto`` whose image is read by ``load`` on first use."""

    photo_id: str
    scenario: str
    origin: str
    load: Callable[[], np.ndarray]
    holds: str = "large"

    @cached_property
    def image(self) -> np.ndarray:
        return self.load()


@dataclass(eq=False)
class LazyObject:
    """An ``ObjectInstance`` whose photo and mask are read by ``load`` (-> (image, mask)) on first use."""

    object_id: str
    photo_id: str
    label: str
    origin: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    size: str = "medium"

    @cached_property
    def _decoded(self) -> tuple[np.ndarray, np.ndarray]:
        return self.load()

    @property
    def image(self) -> np.ndarray:
        return self._decoded[0]

    @property
    def mask(self) -> np.ndarray:
        return self._decoded[1]

    def bbox(self) -> tuple[int, int, int, int]:
        return ObjectInstance.bbox(self)


class PooledExamples:
    """``TrainingExamples``' example ``i``, made from a pool of a few objects and scenes of ``stream``.

    ``stream`` offers ``name``, ``object_count``, ``scene_count``, ``object(i)`` and ``scene(i)`` (lazy
    records), and ``scenes_for_objects`` (whether its scenes exclude photos of held-out objects)."""

    def __init__(self, stream, resolution: int, seed: int = 0, mask_task_fraction: float = 0.5,
                 multi_fraction: float = 0.5, mask_task_mix: dict | None = None, source_kind: str = ""):
        self.stream = stream
        self.resolution, self.seed = resolution, seed
        self.options = {"mask_task_fraction": mask_task_fraction, "multi_fraction": multi_fraction,
                        "mask_task_mix": mask_task_mix, "source_kind": source_kind}

    def pool(self, index: int, attempt: int = 0) -> SourceContent:
        """The objects and scenes example ``index`` may use (lazy; decoded when the recipe reads them). An
        edit example's objects come from the stream's ``edit_objects`` (those that can be composited)."""
        from flexedit_model.training.data import TRAINING_SEED_OFFSET

        # The recipe's own first draw says which task example ``index`` is (TrainingExamples.__getitem__).
        edit = np.random.default_rng([TRAINING_SEED_OFFSET + self.seed, index]).random() >= \
            self.options["mask_task_fraction"]
        candidates = getattr(self.stream, "edit_objects", None) if edit else None
        rng = np.random.default_rng([POOL_SEED_OFFSET, self.seed, index, attempt])
        if candidates:
            numbers = [candidates[int(i)] for i in rng.integers(len(candidates), size=POOL_OBJECTS)]
        else:
            numbers = rng.integers(self.stream.object_count, size=POOL_OBJECTS)
        objects = [self.stream.object(int(i)) for i in numbers]
        scenes = [self.stream.scene(int(i)) for i in rng.integers(self.stream.scene_count, size=POOL_SCENES)]
        unique = list({obj.object_id: obj for obj in objects}.values())
        return SourceContent(name=self.stream.name, card="", scenes=scenes, objects=unique)

    def __getitem__(self, index: int):
        from flexedit_model.training.data import TrainingExamples

        for attempt in range(POOL_TRIES):
            examples = TrainingExamples(self.pool(index, attempt), self.resolution, self.seed, shrink=False,
                                        **self.options)
            try:
                return examples[index]
            except BadInputError as error:
                # No object of the pool fits the drawn scene (or replace cases lack a second class): draw
                # another pool. Anything else (an unreadable photo) is the user's to see.
                if attempt + 1 == POOL_TRIES or not any(text in str(error) for text in UNFIT_POOL_MESSAGES):
                    raise
        raise AssertionError("unreachable")
