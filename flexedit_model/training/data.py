"""Training examples for FlexEdit, made from a source's photos and object masks.

Two tasks, mixed (``mask_task_fraction`` of each batch is task a):
(a) free-shape mask understanding (Sec. 3.3): the input is an object's photo with a ``random_walk``
    mask drawn inside the object, the image target is the object's full mask (white on black, RGB),
    the VLLM's text target is "The mask means '<label>'" + the <img_i> tokens;
(b) editing pairs made with the benchmark builder's compositing (``fsmi_bench.build.composite_case``),
    single- and multi-image, the free-shape mask again a ``random_walk`` over the edit region.

Only objects in the training split (``fsmi_bench_split``) are used, and only scenes from photos none
of whose objects is held out, so held-out objects never appear in training; the benchmark's own cases
are never used (their seeds and case ids are not those of training examples; tests compare sha256).
All images are RGB uint8 at ``resolution`` x ``resolution``; masks are bool, True = marked / object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from fsmi_bench.sources.base import SourceContent

MASK_TASK_INSTRUCTION = "What does the marked area mean? Draw its full mask."
HELDOUT_FRACTION = 0.25
# Keeps training composites in a seed stream of their own, apart from any benchmark build's seed.
TRAINING_SEED_OFFSET = 7_919_000


@dataclass(frozen=True, eq=False)
class TrainingExample:
    example_id: str  # "mask_000012" or "edit_000012"
    task: str  # "mask" (a) or "edit" (b)
    kind: str  # "single" or "multi"
    scene: np.ndarray  # RGB uint8 (R, R, 3), the input image x1
    target: np.ndarray  # RGB uint8 (R, R, 3), the image to generate
    mask: np.ndarray  # bool (R, R), the free-shape mask given as input
    region: np.ndarray  # bool (R, R), the true region (object mask / edit region)
    instruction: str
    label: str
    subject: np.ndarray | None  # RGB uint8, multi-image examples only
    origins: tuple[str, ...]  # "source:object_id" / "source:photo_id" of what it was made from


def fsmi_bench_split(object_id: str, heldout_fraction: float = HELDOUT_FRACTION) -> str:
    """"train" or "heldout" for an object, from the sha256 of its id: stable across runs and machines."""
    bucket = int(hashlib.sha256(object_id.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if bucket < heldout_fraction else "train"


def split_content(content: SourceContent, split: str, heldout_fraction: float = HELDOUT_FRACTION) -> SourceContent:
    """The part of ``content`` a split may use: its objects, and scenes whose photos hold none of the others."""
    objects = [obj for obj in content.objects if fsmi_bench_split(obj.object_id, heldout_fraction) == split]
    other_photos = {obj.photo_id for obj in content.objects
                    if fsmi_bench_split(obj.object_id, heldout_fraction) != split}
    scenes = [scene for scene in content.scenes if scene.photo_id not in other_photos] or list(content.scenes)
    if not objects:
        raise ValueError(f"source {content.name!r} has no objects in the {split!r} split")
    return replace(content, objects=objects, scenes=scenes, cases=[])


def _random_walk(region: np.ndarray, seed: int) -> np.ndarray:
    from fsmi_bench.masks import generate_mask

    return generate_mask("random_walk", region, seed).mask


def _square(image: np.ndarray, size: int) -> np.ndarray:
    from fsmi_bench.compose import resize_rgb

    return image if image.shape[:2] == (size, size) else resize_rgb(image, size, size)


def _square_mask(mask: np.ndarray, size: int) -> np.ndarray:
    from fsmi_bench.compose import resize_mask

    return mask if mask.shape == (size, size) else resize_mask(mask, size, size)


def mask_image(mask: np.ndarray) -> np.ndarray:
    """A bool mask as the RGB uint8 image the model learns to draw: white = object, black elsewhere."""
    return np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=2)


def mask_from_image(image: np.ndarray) -> np.ndarray:
    """Read a drawn mask back: mean channel value above half the range (RGB uint8 -> bool)."""
    return image.astype(np.float32).mean(axis=2) > 127.5


class TrainingExamples:
    """Example ``index`` is a pure function of (content, resolution, seed, index): resumable and shardable."""

    def __init__(self, content: SourceContent, resolution: int, seed: int = 0, mask_task_fraction: float = 0.5,
                 multi_fraction: float = 0.5, mask_fn=_random_walk):
        self.content = content
        self.resolution = resolution
        self.seed = seed
        self.mask_task_fraction = mask_task_fraction
        self.multi_fraction = multi_fraction
        self.mask_fn = mask_fn

    def __getitem__(self, index: int) -> TrainingExample:
        rng = np.random.default_rng([TRAINING_SEED_OFFSET + self.seed, index])
        if rng.random() < self.mask_task_fraction:
            return self._mask_example(index, rng)
        kind = "multi" if rng.random() < self.multi_fraction else "single"
        return self._edit_example(index, kind, rng)

    def _mask_example(self, index: int, rng: np.random.Generator) -> TrainingExample:
        size = self.resolution
        obj = self.content.objects[int(rng.integers(len(self.content.objects)))]
        photo = obj.image[:, ::-1] if rng.random() < 0.5 else obj.image
        full = obj.mask[:, ::-1] if photo is not obj.image else obj.mask
        scene = _square(np.ascontiguousarray(photo), size)
        region = _square_mask(np.ascontiguousarray(full), size)
        mask = self.mask_fn(region, int(rng.integers(2**31)))
        return TrainingExample(f"mask_{index:06d}", "mask", "single", scene, mask_image(region), mask, region,
                               MASK_TASK_INSTRUCTION, obj.label, None,
                               (f"{self.content.name}:{obj.object_id}",))

    def _edit_example(self, index: int, kind: str, rng: np.random.Generator) -> TrainingExample:
        from fsmi_bench.build import composite_case

        size = self.resolution
        case = composite_case(self.content, kind, int(rng.integers(2**31)), TRAINING_SEED_OFFSET + self.seed, size)
        region = _square_mask(case.region, size)
        mask = self.mask_fn(region, int(rng.integers(2**31)))
        return TrainingExample(f"edit_{index:06d}", "edit", kind, _square(case.scene, size), _square(case.gt, size),
                               mask, region, case.instruction, case.label, case.subject,
                               tuple(sorted(case.origins.values())))


def load_training_content(spec: str, split: str = "train") -> SourceContent:
    """The ``split`` part of source ``spec`` (``mini``, ``coco:PATH``, ...)."""
    from fsmi_bench.sources import load_source

    return split_content(load_source(spec), split)
