"""``datasets`` folders written with ``save_to_disk``, in one of two schemas told apart by their columns.

(a) Segmentation rows: ``image`` (Image, the whole photo), ``mask`` (Image, any non-zero pixel =
    object), ``label`` (str); optional ``scenario`` ("indoor"/"outdoor", default "outdoor"),
    ``photo_id`` (str; rows sharing it are objects of one photo; default: each row is its own photo)
    and ``origin`` (str). Gives one ``ObjectInstance`` per row and one ``ScenePhoto`` per distinct photo
    (the first row of that photo supplies its image, scenario and origin).
(b) An exported FSMI benchmark (the schema ``fsmi export --format hf`` writes, see ``export.py``):
    gives one ``PreparedCase`` per row, with every mask condition the row holds.

A ``DatasetDict`` folder is read split by split in order of split name; ids then start with the split.
Images come out RGB uint8 (H, W, 3), masks bool (H, W) with True = object / region to edit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fsmi_bench.benchmark.sources.base import ObjectInstance, PreparedCase, ScenePhoto, SourceContent
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import pil_to_mask, pil_to_rgb
from fsmi_bench.schema import EXPORT_MASK_COLUMNS, MASK_CONDITIONS, SCENARIOS

SEGMENTATION_COLUMNS = frozenset({"image", "mask", "label"})
EXPORT_COLUMNS = frozenset({"case_id", "kind", "op", "scenario", "complexity", "instruction", "label",
                            "scene", "gt", "region"})
DEFAULT_SCENARIO = "outdoor"


def load_hf_disk(path: str) -> SourceContent:
    """Load a ``save_to_disk`` folder as objects and scenes (schema a) or prepared cases (schema b)."""
    from datasets import Dataset, load_from_disk

    root = Path(path)
    if not root.is_dir():
        raise BadInputError(f"datasets folder not found: {root}")
    try:
        loaded = load_from_disk(str(root))
    except (FileNotFoundError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise BadInputError(f"{root} is not a folder written by datasets' save_to_disk ({error})") from None
    splits = [("", loaded)] if isinstance(loaded, Dataset) else [(name, loaded[name]) for name in sorted(loaded)]
    columns = set(splits[0][1].column_names) if splits else set()
    if any(set(split.column_names) != columns for _, split in splits):
        raise BadInputError(f"{root}: the splits have different columns")
    card_file = root / "README.md"
    if EXPORT_COLUMNS <= columns:
        cases = [case for name, split in splits for case in _exported_cases(root, name, split)]
        cases.sort(key=lambda case: case.case_id)
        if len({case.case_id for case in cases}) != len(cases):
            raise BadInputError(f"{root}: a case_id appears more than once")
        card = card_file.read_text(encoding="utf-8") if card_file.is_file() else _export_card(root, cases)
        return SourceContent(name=f"hf:{root}", card=card, cases=cases)
    if SEGMENTATION_COLUMNS <= columns:
        scenes, objects = _segmentation_rows(root, splits)
        card = _segmentation_card(root, scenes, objects)
        if card_file.is_file():
            card += "\n" + card_file.read_text(encoding="utf-8")
        return SourceContent(name=f"hf:{root}", card=card, scenes=scenes, objects=objects)
    raise BadInputError(f"{root}: unknown schema (columns: {', '.join(sorted(columns)) or 'none'}); expected "
                        f"segmentation rows ({', '.join(sorted(SEGMENTATION_COLUMNS))}) or an exported FSMI "
                        "benchmark (fsmi export --format hf)")


def _segmentation_rows(root: Path, splits) -> tuple[list[ScenePhoto], list[ObjectInstance]]:
    scenes: dict[str, ScenePhoto] = {}
    objects = []
    for split_name, split in splits:
        prefix = f"{split_name}/" if split_name else ""
        for index, row in enumerate(split):
            where = f"{root}: {prefix}row {index}"
            photo_id = row.get("photo_id")
            photo_id = f"{prefix}{photo_id}" if photo_id not in (None, "") else f"{prefix}row-{index:06d}"
            label = row["label"]
            if not isinstance(label, str) or not label.strip():
                raise BadInputError(f"{where}: label must be a non-empty string, not {label!r}")
            scenario = row.get("scenario") or DEFAULT_SCENARIO
            if scenario not in SCENARIOS:
                raise BadInputError(f"{where}: scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
            origin = row.get("origin") or f"hf:{root.name} {prefix}row {index}"
            if photo_id in scenes:
                # Objects of one photo share the scene's array, so the builder sees a single photo.
                image = scenes[photo_id].image
                if row["image"] is not None and _rgb(row["image"], where, "image").shape != image.shape:
                    raise BadInputError(f"{where}: image differs in size from the first row of photo {photo_id!r}")
            else:
                image = _rgb(row["image"], where, "image")
                scenes[photo_id] = ScenePhoto(photo_id=photo_id, image=image, scenario=scenario, origin=origin)
            mask = _mask(row["mask"], where, "mask")
            if mask.shape != image.shape[:2]:
                raise BadInputError(f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} but image is "
                                    f"{image.shape[1]}x{image.shape[0]}")
            if not mask.any():
                raise BadInputError(f"{where}: mask is empty")
            objects.append(ObjectInstance(object_id=f"{prefix}{index:06d}", photo_id=photo_id, label=label.strip(),
                                          image=image, mask=mask, origin=origin))
    return list(scenes.values()), objects


def _exported_cases(root: Path, split_name: str, split) -> list[PreparedCase]:
    from fsmi_bench.benchmark.sources.fsmi_folder import validate_case_arrays, validate_case_fields

    cases = []
    for index, row in enumerate(split):
        where = f"{root}: {split_name + '/' if split_name else ''}row {index}: case {row.get('case_id')!r}"
        validate_case_fields(row["case_id"], row["kind"], row["op"], row["scenario"], row["complexity"], where)
        for column in ("scene", "gt", "region"):
            if row[column] is None:
                raise BadInputError(f"{where}: {column} is missing")
        masks = {mask_type: _mask(row[column], where, column)
                 for mask_type, column in zip(MASK_CONDITIONS, EXPORT_MASK_COLUMNS) if row.get(column) is not None}
        origins = row.get("origins") or ""
        case = PreparedCase(
            case_id=row["case_id"], kind=row["kind"], op=row["op"], scenario=row["scenario"],
            complexity=row["complexity"], instruction=row["instruction"], label=row["label"],
            clip_text=row.get("clip_text") or row["label"], scene=_rgb(row["scene"], where, "scene"),
            gt=_rgb(row["gt"], where, "gt"), region=_mask(row["region"], where, "region"),
            subject=None if row.get("subject") is None else _rgb(row["subject"], where, "subject"),
            # exports made before the subject mask existed have no such column
            subject_mask=None if row.get("subject_mask") is None else _mask(row["subject_mask"], where, "subject_mask"),
            masks=masks, origin=origins if origins not in ("{}", "") else f"hf:{root.name} row {index}")
        validate_case_arrays(case, where)
        cases.append(case)
    return cases


def _rgb(image, where: str, column: str) -> np.ndarray:
    """A decoded ``Image`` cell as RGB uint8; 16-bit and float grayscale are scaled to 0..255."""
    if image is None:
        raise BadInputError(f"{where}: {column} is missing")
    return pil_to_rgb(image)


def _mask(image, where: str, column: str) -> np.ndarray:
    """A decoded ``Image`` cell as a bool mask: any non-zero pixel (palette index or channel) is True."""
    if image is None:
        raise BadInputError(f"{where}: {column} is missing")
    return pil_to_mask(image)


def _export_card(root: Path, cases: list[PreparedCase]) -> str:
    multi = sum(case.kind == "multi" for case in cases)
    return (f"## Source: exported FSMI benchmark `{root}`\n\n{len(cases)} cases "
            f"({len(cases) - multi} single-image, {multi} multi-image).\n")


def _segmentation_card(root: Path, scenes: list[ScenePhoto], objects: list[ObjectInstance]) -> str:
    labels = sorted({obj.label for obj in objects})
    return (f"## Source: datasets folder `{root}`\n\n{len(scenes)} photos, {len(objects)} objects "
            f"(labels: {', '.join(labels) or 'none'}).\n")
