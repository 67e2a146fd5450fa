"""``--data coco:PATH``: a COCO-format folder, streamed: annotations indexed at start, photos and masks
decoded when an example draws them.

The folder is the one ``fsmi build --source coco:PATH`` reads (``fsmi_bench/benchmark/sources/FORMATS.md``):
``PATH/annotations/instances*.json`` (else ``PATH/*.json``), images under ``PATH/images/`` or ``PATH/``.
pycocotools' ``COCO.createIndex`` is the index (the JSON's own lists, ``imgToAnns``); nothing is
rasterised at start. The objects are the same as the eager reader's, with one difference in the area
test: an annotation's own ``area`` (COCO's polygon or RLE area) decides whether it covers at least 1 % of
its image, where the eager reader measures the decoded mask. Objects split into train / held-out by the
sha256 of their id (``fsmi_bench_split``, ids ``<image id>/<annotation id>`` as the eager reader makes
them), so a streamed run holds out exactly the objects an eager one does.

Examples: both tasks of ``TrainingExamples`` (mask understanding with the category name as the label,
and composited edits), each made from a pool of a few objects and scenes (``pooled.PooledExamples``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from flexedit_model.training.sources.pooled import LazyObject, LazyScene, PooledExamples, shrink_photo
from fsmi_bench.errors import BadInputError


def compact_polygons(entry: dict) -> dict:
    """A JSON object as parsed, an annotation's polygons turned into float arrays: each point costs 8
    bytes instead of a Python float and a list slot (32), which is most of a COCO index's memory."""
    segmentation = entry.get("segmentation")
    # Only lists of numbers (a string or a bool is left as read, for bounded_annotation to refuse in one line).
    if isinstance(segmentation, list) and all(
            isinstance(polygon, list) and all(type(value) in (int, float) for value in polygon)
            for polygon in segmentation):
        entry["segmentation"] = [np.asarray(polygon, dtype=np.float64) for polygon in segmentation]
    return entry


def plain_polygons(annotation: dict) -> dict:
    """The annotation as pycocotools and ``bounded_annotation`` take it (polygons as lists again)."""
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list) and any(isinstance(polygon, np.ndarray) for polygon in segmentation):
        return {**annotation, "segmentation": [polygon.tolist() if isinstance(polygon, np.ndarray) else polygon
                                               for polygon in segmentation]}
    return annotation


class CocoStream:
    """The training split of a COCO folder as an index; ``object(i)`` and ``scene(i)`` are lazy records."""

    def __init__(self, path: str, working_side: int, split: str = "train", min_area_fraction: float = 0.01,
                 resolution: int | None = None):
        """``resolution``: the training size, which sets how tall an object must be to be composited
        (``edit_objects``); None: every object counts."""
        from flexedit_model.training.data import fsmi_bench_split
        from fsmi_bench.benchmark.sources.coco import _read_coco

        self.root = Path(path)
        if not self.root.is_dir():
            raise BadInputError(f"COCO folder not found: {self.root}")
        self.name = f"coco:{self.root}"
        self.working_side = working_side
        json_files = sorted((self.root / "annotations").glob("instances*.json")) or sorted(self.root.glob("*.json"))
        if not json_files:
            raise BadInputError(f"{self.root} has no COCO annotations: expected {self.root}/annotations/"
                                f"instances*.json or {self.root}/*.json")
        self.files = [(json_file, _read_coco(json_file, compact_polygons)) for json_file in json_files]
        self.prefixes = [f"{json_file.stem}/" if len(json_files) > 1 else "" for json_file in json_files]
        # Composited edits paste an object at 35 % or more of the scene's height, upscaled at most
        # MAX_UPSCALE times (fsmi_bench.benchmark.compose): shorter objects never fit, so they are only
        # drawn for the mask task (real COCO's many small objects would otherwise fill the pools).
        from fsmi_bench.benchmark.compose import HEIGHT_RANGES, MAX_UPSCALE

        shortest = 0 if resolution is None else HEIGHT_RANGES["medium"][0] * resolution / MAX_UPSCALE
        objects, edit_objects, held_out_photos, photos = [], [], set(), []
        for number, (json_file, coco) in enumerate(self.files):
            for image_id in sorted(coco.imgs):
                photos.append((number, image_id))
                info = coco.imgs[image_id]
                for annotation in sorted(coco.imgToAnns.get(image_id, []), key=lambda ann: ann["id"]):
                    if annotation.get("iscrowd", 0) or not self._large_enough(coco, annotation, info,
                                                                              min_area_fraction):
                        continue
                    self._check_category(coco, annotation, f"{json_file}: image {image_id}")
                    object_id = f"{self.prefixes[number]}{image_id}/{annotation['id']}"
                    if fsmi_bench_split(object_id) == split:
                        if self._box_height(annotation, info) >= shortest:
                            edit_objects.append(len(objects))
                        objects.append((number, image_id, annotation["id"]))
                    else:
                        held_out_photos.add((number, image_id))
        self.objects, self.edit_objects = objects, edit_objects
        # Scenes: photos none of whose objects is in another split, as split_content chooses them.
        self.scenes = [photo for photo in photos if photo not in held_out_photos] or photos

    @property
    def object_count(self) -> int:
        return len(self.objects)

    @property
    def scene_count(self) -> int:
        return len(self.scenes)

    @staticmethod
    def _large_enough(coco, annotation: dict, info: dict, min_area_fraction: float) -> bool:
        area = annotation.get("area")
        width, height = info.get("width"), info.get("height")
        if not isinstance(area, (int, float)) or isinstance(area, bool) or not math.isfinite(area):
            # No usable area in the file: pycocotools measures the RLE (no mask is kept).
            from pycocotools import mask as mask_utils

            from fsmi_bench.benchmark.sources.coco import bounded_annotation

            where = f"image {annotation.get('image_id')}"
            try:
                bounded = bounded_annotation(plain_polygons(annotation), width, height, where)
                area = float(mask_utils.area(coco.annToRLE(bounded)))
            except BadInputError:
                raise
            except Exception as error:  # pycocotools raises bare TypeError/ValueError on bad segmentations
                raise BadInputError(f"{where}: annotation {annotation.get('id')} has an unreadable segmentation "
                                    f"({error})") from None
        return area >= max(1.0, min_area_fraction * float(width or 0) * float(height or 0))

    def _box_height(self, annotation: dict, info: dict) -> float:
        """The annotation's box height at the working size (inf when the file gives no usable box)."""
        box, width, height = annotation.get("bbox"), info.get("width") or 0, info.get("height") or 0
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            return math.inf
        return float(box[3]) * min(1.0, self.working_side / max(width, height, 1))

    @staticmethod
    def _check_category(coco, annotation: dict, where: str) -> None:
        category = coco.cats.get(annotation.get("category_id"))
        if category is None:
            raise BadInputError(f"{where}: annotation {annotation['id']} has unknown category_id "
                                f"{annotation.get('category_id')!r}")
        if not isinstance(category.get("name"), str) or not category["name"].strip():
            raise BadInputError(f"{where}: category {annotation['category_id']!r} has no name")

    def photo(self, number: int, image_id) -> np.ndarray:
        """The photo, checked against the JSON's size and scaled down to the working side."""
        from fsmi_bench.benchmark.sources.coco import _find_image
        from fsmi_bench.io import load_rgb

        json_file, coco = self.files[number]
        info = coco.imgs[image_id]
        where = f"{json_file}: image {image_id}"
        file_name = info.get("file_name")
        if not isinstance(file_name, str) or not file_name or "\x00" in file_name:
            raise BadInputError(f"{where}: lacks file_name (or it holds a NUL byte)")
        file = _find_image(self.root, file_name, where)
        try:
            image = load_rgb(file)
        except BadInputError as error:
            raise BadInputError(f"{where}: {error}") from None
        if (info.get("height"), info.get("width")) != image.shape[:2]:
            raise BadInputError(f"{where}: {file_name} is {image.shape[1]}x{image.shape[0]} but the JSON says "
                                f"{info.get('width')}x{info.get('height')}")
        return image

    def mask(self, number: int, annotation_id, shape: tuple[int, int]) -> np.ndarray:
        from fsmi_bench.benchmark.sources.coco import bounded_annotation

        json_file, coco = self.files[number]
        annotation = plain_polygons(coco.anns[annotation_id])
        where = f"{json_file}: image {annotation['image_id']}"
        height, width = shape
        try:
            return coco.annToMask(bounded_annotation(annotation, width, height, where)).astype(bool)
        except BadInputError:
            raise
        except Exception as error:  # pycocotools raises bare TypeError/ValueError on bad segmentations
            raise BadInputError(f"{where}: annotation {annotation_id} has an unreadable segmentation "
                                f"({error})") from None

    def object(self, index: int) -> LazyObject:
        from fsmi_bench.benchmark.compose import resize_mask
        from fsmi_bench.benchmark.sources.coco import _origin

        number, image_id, annotation_id = self.objects[index]
        json_file, coco = self.files[number]
        info = coco.imgs[image_id]

        def load():
            photo = self.photo(number, image_id)
            mask = self.mask(number, annotation_id, photo.shape[:2])
            small = shrink_photo(photo, self.working_side)
            if small is not photo:
                mask = resize_mask(mask, small.shape[1], small.shape[0])
            if not mask.any():
                raise BadInputError(f"{json_file}: annotation {annotation_id} of image {image_id} has an empty "
                                    "mask at the training size")
            return small, mask

        photo_id = f"{self.prefixes[number]}{image_id}"
        label = coco.cats[coco.anns[annotation_id]["category_id"]]["name"]
        return LazyObject(f"{photo_id}/{annotation_id}", photo_id, label, _origin(self.root, info.get("file_name", ""),
                                                                                   info, {}), load)

    def scene(self, index: int) -> LazyScene:
        from fsmi_bench.benchmark.sources.coco import _origin, _scenario

        number, image_id = self.scenes[index]
        json_file, coco = self.files[number]
        info = coco.imgs[image_id]
        annotations = coco.imgToAnns.get(image_id, [])
        scenario = _scenario(coco, info, annotations, f"{json_file}: image {image_id}")
        return LazyScene(f"{self.prefixes[number]}{image_id}", scenario,
                         _origin(self.root, info.get("file_name", ""), info, {}),
                         lambda: shrink_photo(self.photo(number, image_id), self.working_side))


def open_coco(path: str, recipe) -> PooledExamples:
    """The examples of ``coco:PATH`` (both tasks), streamed."""
    from flexedit_model.training.data import WORKING_SIDE_FACTOR

    stream = CocoStream(path, WORKING_SIDE_FACTOR * recipe.resolution, resolution=recipe.resolution)
    if not stream.object_count:
        raise BadInputError(f"--data coco:{path}: no objects in the training split (annotations that are not "
                            "crowds and cover at least 1 % of their image, not held out)")
    check_edit_objects(stream, path, recipe)
    return PooledExamples(stream, recipe.resolution, recipe.seed, recipe.mask_task_fraction, recipe.multi_fraction,
                          recipe.mask_task_mix, source_kind="coco")


def check_edit_objects(stream, path: str, recipe) -> None:
    if recipe.mask_task_fraction < 1 and not stream.edit_objects:
        raise BadInputError(f"--data coco:{path}: no training object is tall enough to composite edits at "
                            f"{recipe.resolution} px; set training.mask_task_fraction to 1 (mask task only)")
