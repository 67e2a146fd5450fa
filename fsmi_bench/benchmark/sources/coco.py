"""COCO-format folders: photos plus an instances JSON with polygon or RLE object masks.

Layout (see ``FORMATS.md``): annotation files ``PATH/annotations/instances*.json``, or, when there is
no such file, ``PATH/*.json``. An image's ``file_name`` is looked up as ``PATH/images/<file_name>``,
then ``PATH/<file_name>``. Masks are decoded with pycocotools (``annToMask``).

- Every image is a ``ScenePhoto``; ``photo_id`` is the image id (prefixed with the JSON file's stem,
  ``instances_val/42``, when the folder has several annotation files, so that ids stay unique).
- Every annotation that is not a crowd region and whose decoded mask covers at least
  ``min_area_fraction`` of the image (default 1 %) is an ``ObjectInstance`` labelled with its category name.
- Scenario: an image entry's own ``"scenario"`` field wins; otherwise each non-person annotation votes by
  its category's supercategory (``INDOOR_SUPERCATEGORIES`` / ``OUTDOOR_SUPERCATEGORIES``; person,
  accessory and unknown supercategories do not vote) and the majority decides; ties and images without
  a vote are outdoor.
- Origin: ``coco:<folder>/<file_name>`` plus the licence named by the image's ``license`` id in the
  JSON's ``licenses`` list, when present.

Images and annotations are read in order of (annotation file name, id), so loading is deterministic.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path

from fsmi_bench.benchmark.sources.base import ObjectInstance, ScenePhoto, SourceContent
from fsmi_bench.errors import BadInputError
from fsmi_bench.schema import SCENARIOS

DEFAULT_MIN_AREA_FRACTION = 0.01
INDOOR_SUPERCATEGORIES = frozenset({"furniture", "kitchen", "appliance", "electronic", "indoor", "food"})
OUTDOOR_SUPERCATEGORIES = frozenset({"vehicle", "outdoor", "animal", "sports"})


def load_coco(path: str, min_area_fraction: float = DEFAULT_MIN_AREA_FRACTION) -> SourceContent:
    """Load a COCO-format folder: scene photos (RGB uint8) and objects with bool masks (True = object).

    ``min_area_fraction``: smallest object kept, as a fraction of its image's pixel count (0..1).
    """
    from fsmi_bench.io import load_rgb

    root = Path(path)
    if not root.is_dir():
        raise BadInputError(f"COCO folder not found: {root}")
    if not 0.0 <= min_area_fraction < 1.0:
        raise BadInputError(f"min_area_fraction must be in [0, 1), not {min_area_fraction}")
    json_files = sorted((root / "annotations").glob("instances*.json")) or sorted(root.glob("*.json"))
    if not json_files:
        raise BadInputError(f"{root} has no COCO annotations: expected {root}/annotations/instances*.json "
                            f"or {root}/*.json")

    scenes, objects, licences_used = [], [], set()
    for json_file in json_files:
        coco = _read_coco(json_file)
        prefix = f"{json_file.stem}/" if len(json_files) > 1 else ""
        licences = {entry.get("id"): entry for entry in coco.dataset.get("licenses", []) if isinstance(entry, dict)}
        for image_id in sorted(coco.imgs):
            info = coco.imgs[image_id]
            where = f"{json_file}: image {image_id}"
            file_name = info.get("file_name")
            if not isinstance(file_name, str) or not file_name:
                raise BadInputError(f"{where}: lacks file_name")
            try:
                image = load_rgb(_find_image(root, file_name, where))
            except BadInputError as error:
                raise BadInputError(f"{where}: {error}") from None
            height, width = image.shape[:2]
            if (info.get("height"), info.get("width")) != (height, width):
                raise BadInputError(f"{where}: {file_name} is {width}x{height} but the JSON says "
                                    f"{info.get('width')}x{info.get('height')}")
            annotations = sorted(coco.imgToAnns.get(image_id, []), key=lambda ann: ann["id"])
            origin = _origin(root, file_name, info, licences)
            if info.get("license") in licences:
                licences_used.add(_licence_text(licences[info["license"]]))
            photo_id = f"{prefix}{image_id}"
            scenes.append(ScenePhoto(photo_id=photo_id, image=image,
                                     scenario=_scenario(coco, info, annotations, where), origin=origin))
            for annotation in annotations:
                if annotation.get("iscrowd", 0):
                    continue
                if annotation.get("category_id") not in coco.cats:
                    raise BadInputError(f"{where}: annotation {annotation['id']} has unknown category_id "
                                        f"{annotation.get('category_id')!r}")
                try:
                    mask = coco.annToMask(annotation).astype(bool)
                except Exception as error:  # pycocotools raises bare TypeError/ValueError on bad segmentations
                    raise BadInputError(f"{where}: annotation {annotation['id']} has an unreadable "
                                        f"segmentation ({error})") from None
                if mask.shape != (height, width):
                    raise BadInputError(f"{where}: annotation {annotation['id']} has a mask of "
                                        f"{mask.shape[1]}x{mask.shape[0]}, not the image's {width}x{height}")
                if mask.sum() < max(1.0, min_area_fraction * height * width):
                    continue
                objects.append(ObjectInstance(object_id=f"{photo_id}/{annotation['id']}", photo_id=photo_id,
                                              label=coco.cats[annotation["category_id"]]["name"],
                                              image=image, mask=mask, origin=origin))
    card = _card(root, json_files, scenes, objects, licences_used, min_area_fraction)
    return SourceContent(name=f"coco:{root}", card=card, scenes=scenes, objects=objects)


def _read_coco(json_file: Path):
    from pycocotools.coco import COCO

    try:
        dataset = json.loads(json_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadInputError(f"{json_file}: not valid JSON ({error})") from None
    if not isinstance(dataset, dict):
        raise BadInputError(f"{json_file}: a COCO file holds a JSON object")
    missing = [key for key in ("images", "annotations", "categories") if key not in dataset]
    if missing:
        raise BadInputError(f"{json_file}: not a COCO instances file (lacks {', '.join(missing)})")
    coco = COCO()
    coco.dataset = dataset
    # pycocotools prints progress to stdout; keep stdout clean for the command's own output.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            coco.createIndex()
        except (KeyError, TypeError) as error:
            raise BadInputError(f"{json_file}: malformed COCO entry (missing or bad {error})") from None
    return coco


def _find_image(root: Path, file_name: str, where: str) -> Path:
    if Path(file_name).is_absolute():
        raise BadInputError(f"{where}: file_name {file_name!r} must be relative to the COCO folder")
    for candidate in (root / "images" / file_name, root / file_name):
        resolved = candidate.resolve()
        if not resolved.is_relative_to(root.resolve()):
            raise BadInputError(f"{where}: file_name {file_name!r} points outside the COCO folder {root}")
        if resolved.is_file():
            return resolved
    raise BadInputError(f"image {file_name} not found under {root}/images/ or {root}/")


def _scenario(coco, info: dict, annotations: list[dict], where: str) -> str:
    if "scenario" in info:
        if info["scenario"] not in SCENARIOS:
            raise BadInputError(f"{where}: scenario {info['scenario']!r} is not one of {', '.join(SCENARIOS)}")
        return info["scenario"]
    votes = Counter()
    for annotation in annotations:
        supercategory = coco.cats.get(annotation.get("category_id"), {}).get("supercategory", "")
        if supercategory in INDOOR_SUPERCATEGORIES:
            votes["indoor"] += 1
        elif supercategory in OUTDOOR_SUPERCATEGORIES:
            votes["outdoor"] += 1
    return "indoor" if votes["indoor"] > votes["outdoor"] else "outdoor"


def _origin(root: Path, file_name: str, info: dict, licences: dict) -> str:
    origin = f"coco:{root.name}/{file_name}"
    if info.get("license") in licences:
        origin += f"; licence: {_licence_text(licences[info['license']])}"
    return origin


def _licence_text(licence: dict) -> str:
    name = licence.get("name") or f"licence {licence.get('id')}"
    return f"{name} ({licence['url']})" if licence.get("url") else name


def _card(root, json_files, scenes, objects, licences_used, min_area_fraction) -> str:
    labels = Counter(obj.label for obj in objects)
    scenarios = Counter(scene.scenario for scene in scenes)
    lines = [f"## Source: COCO folder `{root}`", "",
             f"Annotation files: {', '.join(f'`{file.name}`' for file in json_files)}.",
             f"{len(scenes)} photos ({scenarios['indoor']} indoor, {scenarios['outdoor']} outdoor), "
             f"{len(objects)} objects (non-crowd, at least {min_area_fraction:.1%} of the image).",
             "Objects per label: " + (", ".join(f"{label} {count}" for label, count in sorted(labels.items()))
                                      or "none") + ".",
             "Licences: " + ("; ".join(sorted(licences_used)) or "not stated in the JSON") + "."]
    return "\n".join(lines) + "\n"
