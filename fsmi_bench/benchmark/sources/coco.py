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
import math
from collections import Counter
from pathlib import Path

from fsmi_bench.benchmark.sources.base import ObjectInstance, ScenePhoto, SourceContent
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import refuse_lone_surrogates
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
        licences = {entry.get("id"): entry for entry in coco.dataset.get("licenses") or [] if isinstance(entry, dict)}
        for image_id in sorted(coco.imgs):
            info = coco.imgs[image_id]
            where = f"{json_file}: image {image_id}"
            file_name = info.get("file_name")
            if not isinstance(file_name, str) or not file_name or "\x00" in file_name:
                raise BadInputError(f"{where}: lacks file_name (or it holds a NUL byte)")
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
                label = coco.cats[annotation["category_id"]].get("name")
                if not isinstance(label, str) or not label.strip():
                    raise BadInputError(f"{where}: category {annotation['category_id']!r} has no name")
                try:
                    mask = coco.annToMask(bounded_annotation(annotation, width, height, where)).astype(bool)
                except Exception as error:  # pycocotools raises bare TypeError/ValueError on bad segmentations
                    raise BadInputError(f"{where}: annotation {annotation['id']} has an unreadable "
                                        f"segmentation ({error})") from None
                if mask.shape != (height, width):
                    raise BadInputError(f"{where}: annotation {annotation['id']} has a mask of "
                                        f"{mask.shape[1]}x{mask.shape[0]}, not the image's {width}x{height}")
                if mask.sum() < max(1.0, min_area_fraction * height * width):
                    continue
                objects.append(ObjectInstance(object_id=f"{photo_id}/{annotation['id']}", photo_id=photo_id,
                                              label=label,
                                              image=image, mask=mask, origin=origin))
    card = _card(root, json_files, scenes, objects, licences_used, min_area_fraction)
    return SourceContent(name=f"coco:{root}", card=card, scenes=scenes, objects=objects)


def clip_polygon(points: list[tuple[float, float]], width: int, height: int) -> list[tuple[float, float]]:
    """The polygon cut to the rectangle [-1, width + 1] x [-1, height + 1] (Sutherland-Hodgman).

    The rasterised pixels inside the image are the same, but a coordinate of 1e8 can no longer make
    pycocotools allocate gigabytes for edges that lie far outside the image.
    """
    def cut(polygon, inside, crossing):
        result = []
        for index, current in enumerate(polygon):
            previous = polygon[index - 1]
            if inside(current):
                if not inside(previous):
                    result.append(crossing(previous, current))
                result.append(current)
            elif inside(previous):
                result.append(crossing(previous, current))
        return result

    def at_x(bound):
        return lambda a, b: (bound, a[1] + (b[1] - a[1]) * (bound - a[0]) / (b[0] - a[0]))

    def at_y(bound):
        return lambda a, b: (a[0] + (b[0] - a[0]) * (bound - a[1]) / (b[1] - a[1]), bound)

    left, right, top, bottom = -1.0, width + 1.0, -1.0, height + 1.0
    for inside, crossing in ((lambda p: p[0] >= left, at_x(left)), (lambda p: p[0] <= right, at_x(right)),
                             (lambda p: p[1] >= top, at_y(top)), (lambda p: p[1] <= bottom, at_y(bottom))):
        if not points:
            break
        points = cut(points, inside, crossing)
    return points


def bounded_annotation(annotation: dict, width: int, height: int, where: str) -> dict:
    """The annotation with its polygons clipped to the image (``clip_polygon``) and its RLE size checked,
    so that decoding it costs memory in proportion to the image, whatever numbers the file holds."""
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        if list(segmentation.get("size") or []) != [height, width]:
            raise BadInputError(f"{where}: annotation {annotation.get('id')} has an RLE of size "
                                f"{segmentation.get('size')!r}, not the image's [{height}, {width}]")
        return annotation
    if not isinstance(segmentation, list):
        raise BadInputError(f"{where}: annotation {annotation.get('id')} has no polygon or RLE segmentation")
    polygons = []
    for polygon in segmentation:
        if (not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2
                or not all(isinstance(value, (int, float)) and not isinstance(value, bool)
                           and math.isfinite(value) for value in polygon)):
            raise BadInputError(f"{where}: annotation {annotation.get('id')} has a polygon that is not an even "
                                "list of at least 6 finite numbers")
        clipped = clip_polygon(list(zip(polygon[0::2], polygon[1::2])), width, height)
        if len(clipped) >= 3:
            polygons.append([float(value) for point in clipped for value in point])
    if not polygons:  # wholly outside the image: an empty mask, dropped later as too small
        polygons = [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    return {**annotation, "segmentation": polygons}


def _read_coco(json_file: Path, object_hook=None):
    """The file's pycocotools index (``COCO`` with ``createIndex`` run). ``object_hook``: given to
    ``json.loads`` for each object as it is parsed (the training stream compacts polygons with it)."""
    from pycocotools.coco import COCO

    try:
        text = json_file.read_text(encoding="utf-8")
        dataset = json.loads(text, object_hook=object_hook)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadInputError(f"{json_file}: not valid JSON ({error})") from None
    refuse_lone_surrogates(dataset, str(json_file), text)
    if not isinstance(dataset, dict):
        raise BadInputError(f"{json_file}: a COCO file holds a JSON object")
    missing = [key for key in ("images", "annotations", "categories") if key not in dataset]
    if missing:
        raise BadInputError(f"{json_file}: not a COCO instances file (lacks {', '.join(missing)})")
    _check_entries(dataset, json_file)
    coco = COCO()
    coco.dataset = dataset
    # pycocotools prints progress to stdout; keep stdout clean for the command's own output.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            coco.createIndex()
        except (KeyError, TypeError) as error:
            raise BadInputError(f"{json_file}: malformed COCO entry (missing or bad {error})") from None
    return coco


# The fields that are used as keys or compared with sets: they must be ids (whole numbers or strings), one
# kind per field, so that a list or a mix of kinds is one error here rather than a TypeError deep inside.
_ID_FIELDS = {"images": ("id",), "annotations": ("id", "image_id", "category_id"), "categories": ("id",),
              "licenses": ("id",)}
_OPTIONAL_ID_FIELDS = {"images": ("license",)}
_TEXT_FIELDS = {"categories": ("name", "supercategory"), "images": ("file_name",), "licenses": ("name", "url")}


def _is_id(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def _check_entries(dataset: dict, json_file: Path) -> None:
    """Refuse sections that are not lists of objects, and ids or names of the wrong kind, in one line."""
    for section, fields in _ID_FIELDS.items():
        if section == "licenses" and dataset.get(section) is None:
            continue
        entries = dataset[section]
        if not isinstance(entries, list):
            raise BadInputError(f"{json_file}: '{section}' must be a list, not {type(entries).__name__}")
        kinds: dict[str, set] = {}
        for index, entry in enumerate(entries):
            where = f"{json_file}: {section}[{index}]"
            if not isinstance(entry, dict):
                raise BadInputError(f"{where} must be an object, not {type(entry).__name__}")
            for field in fields:
                if field not in entry or not _is_id(entry[field]):
                    raise BadInputError(f"{where}: '{field}' must be a whole number or a string, not "
                                        f"{str(entry.get(field))[:40]!r}")
                kinds.setdefault(field, set()).add(type(entry[field]))
            for field in _OPTIONAL_ID_FIELDS.get(section, ()):
                if entry.get(field) is not None and not _is_id(entry[field]):
                    raise BadInputError(f"{where}: '{field}' must be a whole number or a string")
            for field in _TEXT_FIELDS.get(section, ()):
                if entry.get(field) is not None and not isinstance(entry[field], str):
                    raise BadInputError(f"{where}: '{field}' must be a string, not {type(entry[field]).__name__}")
        mixed = [field for field, types in kinds.items() if len(types) > 1]
        if mixed:
            raise BadInputError(f"{json_file}: '{section}' mixes whole numbers and strings as '{mixed[0]}'")


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
