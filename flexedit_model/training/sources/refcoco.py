"""``--data refcoco:PATH``: referring expressions (RefCOCO, RefCOCO+, RefCOCOg, gRefCOCO) as the mask task,
the expression being the label the VLLM must say ("The mask means 'the man on the left'").

Layouts read, as the official loaders read them:
- RefCOCO / RefCOCO+ / RefCOCOg (lichengunc/refer, ``refer.py`` lines 48-70): ``PATH/refs(<splitBy>).p``, a
  pickled list of refs ``{ref_id, ann_id, image_id, category_id, split, sentences: [{sent, raw, tokens,
  sent_id}], sent_ids, file_name}``, and ``PATH/instances.json`` (COCO instances of the referred images);
  images in ``data_root/images/mscoco/images/train2014`` with ``PATH = data_root/refcoco``;
- gRefCOCO (henghuiding/ReLA, ``gres_model/data/datasets/grefer.py``, ``G_REFER.__init__``):
  ``PATH/grefs(<splitBy>).json`` (or ``.p``) with the same keys except that ``ann_id`` and ``category_id``
  are lists (several objects per expression) and ``ann_id == [-1]`` marks an expression with no target;
  images in ``data_root/images/train2014``.
``PATH`` may also name the refs file itself (``refcoco:/data/refcoco/refs(unc).p``), which a folder with
several refs files needs. Images are looked up in ``PATH/images/``, then in the two official places.

Only refs of the ``train`` split are used (the official splits keep val / test images apart); expressions
without a target are left out (there is no region to draw). The referent's mask (the union, for several
objects) is the image target; the photo is never mirrored ("left" must stay left). The pickle is read
with a loader that builds only plain lists, dicts, strings and numbers, so a file cannot run code.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError

REF_FILE_PATTERNS = ("refs(*).p", "grefs(*).json", "grefs(*).p")
IMAGE_FOLDERS = ("images", "../images/mscoco/images/train2014", "../images/train2014")
DRAW_TRIES = 8  # refs to try for one example when a referent vanishes at the training resolution


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise BadInputError(f"the refs pickle asks for {module}.{name}; a refs file holds only lists, dicts, "
                            "strings and numbers")


def _refs_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise BadInputError(f"referring-expression folder not found: {path}")
    found = sorted({file for pattern in REF_FILE_PATTERNS for file in path.glob(pattern)})
    if not found:
        raise BadInputError(f"{path} holds no refs(<split>).p or grefs(<split>).json (the refer / gRefCOCO layout)")
    if len(found) > 1:
        raise BadInputError(f"{path} holds {', '.join(file.name for file in found)}: name one, e.g. "
                            f"refcoco:{found[-1]}")
    return found[0]


def _read_refs(file: Path) -> list:
    try:
        if file.suffix == ".json":
            refs = json.loads(file.read_text(encoding="utf-8"))
        else:
            with open(file, "rb") as handle:
                refs = _PlainUnpickler(handle, encoding="latin1").load()
    except BadInputError as error:
        raise BadInputError(f"{file}: {error}") from None
    except Exception as error:  # json, pickle and decoding raise many types for a damaged file
        raise BadInputError(f"{file} cannot be read as a refs file ({type(error).__name__}: {error})") from None
    if not isinstance(refs, list):
        raise BadInputError(f"{file}: a refs file holds a list of refs, not {type(refs).__name__}")
    return refs


class RefExamples:
    """Mask-task examples of the train refs: photo, random-walk mask inside the referent, expression as label."""

    def __init__(self, path: str, resolution: int, seed: int = 0, split: str = "train"):
        from fsmi_bench.benchmark.sources.coco import _read_coco

        self.refs_file = _refs_file(Path(path))
        self.folder = self.refs_file.parent
        self.name = f"refcoco:{path}"
        instances = self.folder / "instances.json"
        if not instances.is_file():
            raise BadInputError(f"{self.folder} has {self.refs_file.name} but no instances.json beside it")
        self.coco = _read_coco(instances)
        self.resolution, self.seed = resolution, seed
        self.refs = []  # (image_id, annotation ids, expressions)
        for number, ref in enumerate(_read_refs(self.refs_file)):
            where = f"{self.refs_file}: ref {number}"
            if not isinstance(ref, dict) or not {"ann_id", "image_id", "split", "sentences"} <= set(ref):
                raise BadInputError(f"{where} lacks ann_id, image_id, split or sentences")
            if ref["split"] != split:
                continue
            annotation_ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
            if not all(isinstance(value, (int, str)) for value in [*annotation_ids, ref["image_id"]]):
                raise BadInputError(f"{where}: ann_id and image_id must be ids (whole numbers or strings)")
            if annotation_ids == [-1] or ref.get("no_target"):
                continue
            missing = [ann for ann in annotation_ids if ann not in self.coco.anns]
            if missing or ref["image_id"] not in self.coco.imgs:
                raise BadInputError(f"{where}: annotation {missing[0] if missing else ''} or image "
                                    f"{ref['image_id']} is not in {instances}")
            expressions = tuple(sentence["sent"].strip() for sentence in ref["sentences"]
                                if isinstance(sentence, dict) and isinstance(sentence.get("sent"), str)
                                and sentence["sent"].strip())
            if expressions:
                self.refs.append((ref["image_id"], tuple(annotation_ids), expressions))

    def __getitem__(self, index: int):
        from flexedit_model.training.data import (
            MASK_TASK_INSTRUCTION,
            TRAINING_SEED_OFFSET,
            TrainingExample,
            _random_walk,
            _square,
            _square_mask,
            mask_image,
        )

        rng = np.random.default_rng([TRAINING_SEED_OFFSET + self.seed, index])
        for _ in range(DRAW_TRIES):
            image_id, annotation_ids, expressions = self.refs[int(rng.integers(len(self.refs)))]
            photo = self._photo(image_id)
            full = np.zeros(photo.shape[:2], bool)
            for annotation_id in annotation_ids:
                full |= self._mask(annotation_id, photo.shape[:2])
            region = _square_mask(full, self.resolution)
            if region.any():
                break
        else:
            raise BadInputError(f"{self.name}: {DRAW_TRIES} referents in a row vanish at {self.resolution} px; "
                                "train at a higher resolution")
        expression = expressions[int(rng.integers(len(expressions)))]
        mask = _random_walk(region, int(rng.integers(2**31)))
        origin = f"refcoco:{image_id}/" + "+".join(str(ann) for ann in annotation_ids)
        return TrainingExample(f"mask_{index:06d}", "mask", "single", _square(photo, self.resolution),
                               mask_image(region), mask, region, MASK_TASK_INSTRUCTION, expression, None,
                               (origin,), "refcoco")

    def _photo(self, image_id) -> np.ndarray:
        from fsmi_bench.io import load_rgb

        info = self.coco.imgs[image_id]
        file_name = str(info.get("file_name", ""))
        if not file_name or Path(file_name).is_absolute() or ".." in Path(file_name).parts:
            raise BadInputError(f"{self.folder}/instances.json: image {image_id} has file_name {file_name!r}")
        for folder in IMAGE_FOLDERS:
            candidate = self.folder / folder / file_name
            if candidate.is_file():
                image = load_rgb(candidate)
                if (info.get("height"), info.get("width")) != image.shape[:2]:
                    raise BadInputError(f"{candidate} is {image.shape[1]}x{image.shape[0]} but instances.json "
                                        f"says {info.get('width')}x{info.get('height')}")
                return image
        raise BadInputError(f"image {file_name} not found in {', '.join(str(self.folder / f) for f in IMAGE_FOLDERS)}")

    def _mask(self, annotation_id, shape: tuple[int, int]) -> np.ndarray:
        from fsmi_bench.benchmark.sources.coco import bounded_annotation

        annotation = self.coco.anns[annotation_id]
        where = f"{self.folder}/instances.json: image {annotation.get('image_id')}"
        try:
            return self.coco.annToMask(bounded_annotation(annotation, shape[1], shape[0], where)).astype(bool)
        except BadInputError:
            raise
        except Exception as error:  # pycocotools raises bare TypeError/ValueError on bad segmentations
            raise BadInputError(f"{where}: annotation {annotation_id} has an unreadable segmentation "
                                f"({error})") from None


def open_refcoco(path: str, recipe) -> RefExamples:
    examples = RefExamples(path, recipe.resolution, recipe.seed)
    if not examples.refs:
        raise BadInputError(f"--data refcoco:{path}: no expressions with a target in the train split of "
                            f"{examples.refs_file.name}")
    return examples
