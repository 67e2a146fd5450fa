"""Training examples for FlexEdit, made from a source's photos and object masks.

Two tasks, mixed (``mask_task_fraction`` of each batch is task a):
(a) free-shape mask understanding (Sec. 3.3): the input is a photo with a ``random_walk`` mask drawn
    inside one object, the image target is the object's full mask (white on black, RGB), the VLLM's
    answer the <img_i> tokens, then the text target "The mask means '<label>'" (vllm.py). The paper
    draws these from large segmentation sets; a small source has a dozen objects, each always in the
    same place of the same photo, so ``mask_task_mix`` adds variety of place, size and shape: "photo"
    (the object in its own photo), "pasted" (a training object cut out and pasted at a random place and
    size on a training scene) and "shape" (a random polygon filled with a crop of another photo, on a training scene).
    Pasted examples mostly hold other pasted objects or shapes too (DISTRACTOR_COUNTS), so that only
    the mask says which one to draw;
(b) editing pairs made with the benchmark builder's compositing (``fsmi_bench.benchmark.builder.composite_case``),
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

from fsmi_bench.benchmark.sources.base import SourceContent
from fsmi_bench.errors import BadInputError

MASK_TASK_INSTRUCTION = "What does the marked area mean? Draw its full mask."
HELDOUT_FRACTION = 0.25
# Keeps training composites in a seed stream of their own, apart from any benchmark build's seed.
TRAINING_SEED_OFFSET = 7_919_000
MASK_TASK_KINDS = ("photo", "pasted", "shape")
PASTED_AREA_RANGE = (0.04, 0.30)  # object (or shape) area as a fraction of the image, mask task only
SHAPE_LABEL = "shape"
DISTRACTOR_COUNTS = (0, 1, 1, 2)  # how many other objects or shapes a pasted example holds, drawn uniformly
# Photos are scaled down once to this multiple of the training resolution: resizing full-size photos
# for every example would take most of the time spent making a batch.
WORKING_SIDE_FACTOR = 2


@dataclass(frozen=True, eq=False)
class TrainingExample:
    example_id: str  # "mask_000012", "edit_000012" or "vqa_000012"
    task: str  # "mask" (a), "edit" (b) or "vqa" (a conversation: language loss only)
    kind: str  # "single" or "multi"
    scene: np.ndarray  # RGB uint8 (R, R, 3), the input image x1
    target: np.ndarray  # RGB uint8 (R, R, 3), the image to generate
    mask: np.ndarray  # bool (R, R), the free-shape mask given as input
    region: np.ndarray  # bool (R, R), the true region (object mask / edit region)
    instruction: str
    label: str
    subject: np.ndarray | None  # RGB uint8, multi-image examples only
    origins: tuple[str, ...]  # "source:object_id" / "source:photo_id" of what it was made from
    source_kind: str = ""  # the --data kind it came from (mini, coco, refcoco, magicbrush, ...), logged in loss.csv
    # vqa only: the conversation's earlier (question, answer) turns, before ``instruction`` and its answer ``label``
    turns: tuple[tuple[str, str], ...] = ()


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
    from fsmi_bench.benchmark.masks import generate_mask

    return generate_mask("random_walk", region, seed).mask


def _square(image: np.ndarray, size: int) -> np.ndarray:
    from fsmi_bench.benchmark.compose import resize_rgb

    return image if image.shape[:2] == (size, size) else resize_rgb(image, size, size)


def _square_mask(mask: np.ndarray, size: int) -> np.ndarray:
    from fsmi_bench.benchmark.compose import resize_mask

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
                 multi_fraction: float = 0.5, mask_fn=_random_walk, mask_task_mix: dict | None = None,
                 shrink: bool = True, source_kind: str = ""):
        """``mask_task_mix``: weights of the mask-task kinds (MASK_TASK_KINDS); default photos only.
        ``shrink=False``: the content's photos are already at most WORKING_SIDE_FACTOR x ``resolution``
        (streamed sources decode them at that size). ``source_kind``: recorded in each example."""
        self.content = shrink_content(content, WORKING_SIDE_FACTOR * resolution) if shrink else content
        self.source_kind = source_kind or content.name.partition(":")[0]
        self.resolution = resolution
        self.seed = seed
        self.mask_task_fraction = mask_task_fraction
        self.multi_fraction = multi_fraction
        self.mask_fn = mask_fn
        mix = dict(mask_task_mix or {"photo": 1.0})
        unknown = set(mix) - set(MASK_TASK_KINDS)
        if unknown or sum(mix.values()) <= 0 or min(mix.values()) < 0:
            raise BadInputError(f"training.mask_task_mix {mix}: give non-negative weights, not all 0, "
                                f"of {', '.join(MASK_TASK_KINDS)}")
        weights = np.array([float(mix.get(kind, 0.0)) for kind in MASK_TASK_KINDS])
        self.mask_task_cdf = np.cumsum(weights / weights.sum())

    def __getitem__(self, index: int) -> TrainingExample:
        rng = np.random.default_rng([TRAINING_SEED_OFFSET + self.seed, index])
        if rng.random() < self.mask_task_fraction:
            return self._mask_example(index, rng)
        kind = "multi" if rng.random() < self.multi_fraction else "single"
        return self._edit_example(index, kind, rng)

    def _mask_example(self, index: int, rng: np.random.Generator) -> TrainingExample:
        size = self.resolution
        kind = MASK_TASK_KINDS[min(int(np.searchsorted(self.mask_task_cdf, rng.random(), side="right")),
                                   len(MASK_TASK_KINDS) - 1)]
        obj = self.content.objects[int(rng.integers(len(self.content.objects)))]
        if kind == "photo":
            photo = obj.image[:, ::-1] if rng.random() < 0.5 else obj.image
            full = obj.mask[:, ::-1] if photo is not obj.image else obj.mask
            scene = _square(np.ascontiguousarray(photo), size)
            region = _square_mask(np.ascontiguousarray(full), size)
            label, origins = obj.label, (f"{self.content.name}:{obj.object_id}",)
        else:
            from fsmi_bench.benchmark.compose import prepare_scene

            backdrop = self.content.scenes[int(rng.integers(len(self.content.scenes)))]
            scene = _square(prepare_scene(backdrop.image, rng, size), size)
            # Other objects (or shapes) pasted first: the mask, not the pasting, tells which one to draw.
            others = int(rng.choice(DISTRACTOR_COUNTS))
            if kind == "pasted":
                used = [obj]
                for _ in range(others):
                    used.append(self.content.objects[int(rng.integers(len(self.content.objects)))])
                    scene, _ = _paste_object(scene, used[-1], rng)
                scene, region = _paste_object(scene, obj, rng)
                label = obj.label
                origins = tuple(sorted({f"{self.content.name}:{item.object_id}" for item in used}
                                       | {f"{self.content.name}:{backdrop.photo_id}"}))
            else:
                donor = self.content.scenes[int(rng.integers(len(self.content.scenes)))]
                texture = _square(prepare_scene(donor.image, rng, size), size)
                for _ in range(others):
                    scene, _ = _paste_shape(scene, texture, rng)
                scene, region = _paste_shape(scene, texture, rng)
                label = SHAPE_LABEL
                origins = tuple(sorted({f"{self.content.name}:{backdrop.photo_id}",
                                        f"{self.content.name}:{donor.photo_id}"}))
        mask = self.mask_fn(region, int(rng.integers(2**31)))
        return TrainingExample(f"mask_{index:06d}", "mask", "single", scene, mask_image(region), mask, region,
                               MASK_TASK_INSTRUCTION, label, None, origins, self.source_kind)

    def _edit_example(self, index: int, kind: str, rng: np.random.Generator) -> TrainingExample:
        from fsmi_bench.benchmark.builder import composite_case

        size = self.resolution
        case = composite_case(self.content, kind, int(rng.integers(2**31)), TRAINING_SEED_OFFSET + self.seed, size)
        region = _square_mask(case.region, size)
        mask = self.mask_fn(region, int(rng.integers(2**31)))
        return TrainingExample(f"edit_{index:06d}", "edit", kind, _square(case.scene, size), _square(case.gt, size),
                               mask, region, case.instruction, case.label, case.subject,
                               tuple(sorted(case.origins.values())), self.source_kind)


def shrink_content(content: SourceContent, long_side: int) -> SourceContent:
    """``content`` with every photo larger than ``long_side`` scaled down to it (object masks with
    their photos; objects that vanish are dropped). Each photo is resized once, whichever objects share it."""
    from fsmi_bench.benchmark.compose import long_side_to, resize_mask

    resized: dict[int, np.ndarray] = {}

    def small(image: np.ndarray) -> np.ndarray:
        if id(image) not in resized:
            resized[id(image)] = long_side_to(image, long_side) if max(image.shape[:2]) > long_side else image
        return resized[id(image)]

    objects = []
    for obj in content.objects:
        image = small(obj.image)
        mask = obj.mask if image is obj.image else resize_mask(obj.mask, image.shape[1], image.shape[0])
        if mask.any():
            objects.append(replace(obj, image=image, mask=mask))
    return replace(content, objects=objects or list(content.objects),
                   scenes=[replace(scene, image=small(scene.image)) for scene in content.scenes])


def _place(height: int, width: int, area: float, size: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(x, y, w, h): a box of the aspect ``height`` : ``width`` inside a ``size`` square, scaled so that
    ``area`` pixels of the unscaled shape cover a fraction PASTED_AREA_RANGE of the square."""
    scale = np.sqrt(rng.uniform(*PASTED_AREA_RANGE) * size * size / max(area, 1.0))
    scale = min(scale, 0.9 * size / height, 0.9 * size / width)
    box_w, box_h = max(8, round(width * scale)), max(8, round(height * scale))
    return int(rng.integers(0, size - box_w + 1)), int(rng.integers(0, size - box_h + 1)), box_w, box_h


def _paste_object(scene: np.ndarray, obj, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``obj`` cut out of its photo and pasted on ``scene`` at a random place and size; returns the
    image and the object's mask there (its own pixels, not the soft edge of the paste)."""
    from fsmi_bench.benchmark.compose import Placement, cut_out, paste, resize_mask

    cutout = cut_out(obj, mirror=bool(rng.random() < 0.5))
    x, y, width, height = _place(*cutout.mask.shape, float(cutout.mask.sum()), scene.shape[0], rng)
    image, _ = paste(scene, cutout, Placement(x, y, width, height))
    region = np.zeros(scene.shape[:2], bool)
    region[y:y + height, x:x + width] = resize_mask(cutout.mask, width, height)
    return image, region


def _paste_shape(scene: np.ndarray, texture: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random star-shaped polygon filled with ``texture`` (colour-shifted, so that its edge shows)
    on ``scene``; returns the image and the polygon's mask."""
    import cv2

    size = scene.shape[0]
    aspect_width = round(100 * rng.uniform(0.5, 2.0))
    x, y, width, height = _place(100, aspect_width, 0.5 * 100 * aspect_width, size, rng)
    corners = int(rng.integers(5, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = rng.uniform(0.55, 1.0, corners)
    points = np.stack([x + width / 2 * (1 + radii * np.cos(angles)),
                       y + height / 2 * (1 + radii * np.sin(angles))], axis=1)
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillPoly(canvas, [np.rint(points).astype(np.int32)], 1)
    region = canvas.astype(bool)
    shifted = np.clip(texture.astype(np.float32) * rng.uniform(0.6, 1.4, 3) + rng.uniform(-40, 40, 3), 0, 255)
    image = scene.copy()
    image[region] = shifted.astype(np.uint8)[region]
    return image, region


def load_training_content(spec: str, split: str = "train") -> SourceContent:
    """The ``split`` part of source ``spec`` (``mini``, ``coco:PATH``, ...)."""
    from fsmi_bench.benchmark.sources import load_source

    return split_content(load_source(spec), split)
