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

Image cells are decoded here, not by ``datasets``: each is checked against the pixel limit before its
pixels are allocated, only local files are read, and a cell that is not an image (a string, a number, a
damaged file, a mode PIL cannot convert) is one ``BadInputError`` naming the row and the column.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from fsmi_bench.benchmark.sources.base import ObjectInstance, PreparedCase, ScenePhoto, SourceContent
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import check_image_size, decode_image, pil_to_mask, pil_to_rgb
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
        splits = [("", loaded)] if isinstance(loaded, Dataset) else [(name, loaded[name]) for name in sorted(loaded)]
        splits = [(name, _undecoded_images(split)) for name, split in splits]
    except Exception as error:  # datasets and pyarrow raise many types for a damaged folder
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise BadInputError(f"{root} is not a folder written by datasets' save_to_disk that can be read "
                            f"({reason})") from None
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
        for index, row in _rows(root, prefix, split):
            where = f"{root}: {prefix}row {index}"
            photo_id = row.get("photo_id")
            photo_id = f"{prefix}{photo_id}" if photo_id not in (None, "") else f"{prefix}row-{index:06d}"
            label = row["label"]
            if not isinstance(label, str) or not label.strip():
                raise BadInputError(f"{where}: label must be a non-empty string, not {label!r}")
            scenario = row.get("scenario") or DEFAULT_SCENARIO
            if scenario not in SCENARIOS:
                raise BadInputError(f"{where}: scenario {str(scenario)[:40]!r} is not one of {', '.join(SCENARIOS)}")
            origin = row.get("origin") or f"hf:{root.name} {prefix}row {index}"
            if not isinstance(photo_id, str) or not isinstance(origin, str):
                raise BadInputError(f"{where}: photo_id and origin must be strings")
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
    for index, row in _rows(root, f"{split_name}/" if split_name else "", split):
        where = f"{root}: {split_name + '/' if split_name else ''}row {index}: case {str(row.get('case_id'))[:130]!r}"
        validate_case_fields(row["case_id"], row["kind"], row["op"], row["scenario"], row["complexity"], where)
        for column in ("instruction", "label"):
            if not isinstance(row[column], str) or not row[column].strip():
                raise BadInputError(f"{where}: {column} must be a non-empty string")
        for column in ("clip_text", "origins"):
            if row.get(column) is not None and not isinstance(row[column], str):
                raise BadInputError(f"{where}: {column} must be a string, not {type(row[column]).__name__}")
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


def _undecoded_images(split):
    """``split`` with its ``Image`` columns left as {bytes, path}, so that ``_open_cell`` decodes them."""
    from datasets import Image

    for name, feature in split.features.items():
        if isinstance(feature, Image) and feature.decode:
            split = split.cast_column(name, Image(decode=False))
    return split


def _rows(root: Path, prefix: str, split):
    """(index, row) of every row; a row that cannot be read (damaged arrow data) is one error naming it."""
    for index in range(len(split)):
        try:
            row = split[index]
        except Exception as error:  # pyarrow raises many types for damaged data
            raise BadInputError(f"{root}: {prefix}row {index} cannot be read ({type(error).__name__}: "
                                f"{' '.join(str(error).split())[:200]})") from None
        yield index, row


def _open_cell(cell, where: str, column: str):
    """An ``Image`` cell ({bytes, path}, or an already decoded image) as a loaded PIL image."""
    from PIL import Image

    if cell is None:
        raise BadInputError(f"{where}: {column} is missing")
    if isinstance(cell, Image.Image):
        check_image_size(*cell.size, f"{where}: column {column!r}")
        return cell
    if not isinstance(cell, dict) or not ({"bytes", "path"} & set(cell)):
        raise BadInputError(f"{where}: column {column!r} holds {type(cell).__name__} {str(cell)[:40]!r}, "
                            "not an image")
    data, path = cell.get("bytes"), cell.get("path")
    if data is None:
        if not isinstance(path, str) or not path or "://" in path or "\x00" in path or not Path(path).is_file():
            raise BadInputError(f"{where}: column {column!r} holds no image bytes and no local image file "
                                f"({str(path)[:80]!r})")
        source = path
    elif isinstance(data, bytes):
        source = io.BytesIO(data)
    else:
        raise BadInputError(f"{where}: column {column!r} holds {type(data).__name__}, not image bytes")
    return decode_image(source, f"{where}: column {column!r}", f"{where}: column {column!r} is not a readable image")


def _rgb(cell, where: str, column: str) -> np.ndarray:
    """An ``Image`` cell as RGB uint8; 16-bit and float grayscale are scaled to 0..255."""
    image = _open_cell(cell, where, column)
    try:
        return pil_to_rgb(image)
    except (ValueError, OSError) as error:
        raise BadInputError(f"{where}: column {column!r} has image mode {image.mode!r}, which cannot be read as "
                            f"RGB ({error})") from None


def _mask(cell, where: str, column: str) -> np.ndarray:
    """An ``Image`` cell as a bool mask: any non-zero pixel (palette index or channel) is True."""
    image = _open_cell(cell, where, column)
    try:
        return pil_to_mask(image)
    except (ValueError, OSError, TypeError) as error:
        raise BadInputError(f"{where}: column {column!r} has image mode {image.mode!r}, which cannot be read as "
                            f"a mask ({error})") from None


def _export_card(root: Path, cases: list[PreparedCase]) -> str:
    multi = sum(case.kind == "multi" for case in cases)
    return (f"## Source: exported FSMI benchmark `{root}`\n\n{len(cases)} cases "
            f"({len(cases) - multi} single-image, {multi} multi-image).\n")


def _segmentation_card(root: Path, scenes: list[ScenePhoto], objects: list[ObjectInstance]) -> str:
    labels = sorted({obj.label for obj in objects})
    return (f"## Source: datasets folder `{root}`\n\n{len(scenes)} photos, {len(objects)} objects "
            f"(labels: {', '.join(labels) or 'none'}).\n")
