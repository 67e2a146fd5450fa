"""The FSMI folder format: hand-made cases (scene, optional subject, GT, edit region, masks, instruction).

Layout (described with examples in ``FORMATS.md``): either ``PATH/cases.jsonl`` with one JSON object
per case (file paths relative to ``PATH``), or one folder per case, ``PATH/<folder>/case.json``
(file paths relative to that folder, hand-drawn masks found in ``<folder>/masks/<type>.png`` when the
case gives no ``masks`` object). Both may be used in one source. Every file must stay inside ``PATH``.

When a case gives no ``region``, the edit region is the set of pixels where scene and GT differ (any
channel), dilated by ``region_dilation_px`` pixels (default 3, at most ``MAX_REGION_DILATION_PX``) with a
disk, so that the region covers the anti-aliased rim around a pasted object, as the builder's own regions do.

Every problem raises ``BadInputError`` with one line naming the case and the file. Cases come out
sorted by ``case_id`` so that loading is deterministic.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

import numpy as np

from fsmi_bench.benchmark.sources.base import PreparedCase, SourceContent
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import refuse_lone_surrogates
from fsmi_bench.schema import COMPLEXITIES, KINDS, MASK_CONDITIONS, OPS, PATH_PART_PATTERN, SCENARIOS

DEFAULT_REGION_DILATION_PX = 3
# A rim of a few pixels is what anti-aliasing needs; the cap keeps a typo (3000) from costing minutes and
# gigabytes in the dilation, and a region that large would no longer be an edit region.
MAX_REGION_DILATION_PX = 64
CASES_FILE = "cases.jsonl"
CASE_FILE = "case.json"

_REQUIRED_KEYS = ("case_id", "kind", "op", "scenario", "instruction", "label", "scene", "gt")
_OPTIONAL_KEYS = ("complexity", "clip_text", "subject", "region", "masks", "region_dilation_px", "origin",
                  "subject_mask")
_CASE_ID_PATTERN = re.compile(PATH_PART_PATTERN)


def load_fsmi_folder(path: str) -> SourceContent:
    """Load every case of an FSMI folder as ``PreparedCase`` (sorted by case_id).

    Images are RGB uint8 (H, W, 3); region and masks are bool (H, W) of the scene's size,
    True = the pixels to edit.
    """
    root = Path(path)
    cases: dict[str, PreparedCase] = {}
    for raw, base, where, discover_masks in case_entries(root):
        case = _read_case(raw, root, base, where, discover_masks)
        if case.case_id in cases:
            raise BadInputError(f"{where}: case_id {case.case_id!r} appears twice in {root}")
        cases[case.case_id] = case
    ordered = [cases[case_id] for case_id in sorted(cases)]
    return SourceContent(name=f"fsmi:{root}", card=_card(root, ordered), cases=ordered)


def case_entries(root: Path) -> list[tuple]:
    """(case dict, base folder of its paths, where it was read, whether to find its masks) of every case in
    ``root``, parsed but not read: ``read_case`` reads one (streamed training reads them when drawn)."""
    if not root.is_dir():
        raise BadInputError(f"FSMI folder not found: {root}")
    entries = []
    listing = root / CASES_FILE
    if listing.is_file():
        for number, line in enumerate(_read_text(listing).splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{listing}:{number}"
            entries.append((_parse_json(line, where), root, where, False))
    for case_file in sorted(root.glob(f"*/{CASE_FILE}")):
        entries.append((_parse_json(_read_text(case_file), str(case_file)), case_file.parent, str(case_file), True))
    if not entries:
        raise BadInputError(f"{root} holds no cases: expected {CASES_FILE} or <folder>/{CASE_FILE} files "
                            "(see fsmi_bench/benchmark/sources/FORMATS.md)")
    return entries


def read_case(root: Path, entry: tuple) -> PreparedCase:
    """The case of one ``case_entries`` entry, its images read and checked."""
    raw, base, where, discover_masks = entry
    return _read_case(raw, root, base, where, discover_masks)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise BadInputError(f"{path} is not UTF-8 text (byte {error.start})") from None


def _parse_json(text: str, where: str):
    try:
        value = json.loads(text)
        refuse_lone_surrogates(value, where, text)
        return value
    except RecursionError:
        raise BadInputError(f"{where}: JSON nested too deeply") from None
    except json.JSONDecodeError as error:
        raise BadInputError(f"{where}: not valid JSON ({error.msg})") from None


def validate_case_fields(case_id, kind, op, scenario, complexity, where: str) -> None:
    """Check the tags of a case; ``where`` names the case and file in the error."""
    if not isinstance(case_id, str) or not _CASE_ID_PATTERN.fullmatch(case_id):
        raise BadInputError(f"{where}: case_id {case_id!r} must be letters, digits, '_', '-' or '.' "
                            "(it becomes a folder name)")
    _check_choice(kind, KINDS, "kind", where)
    _check_choice(op, OPS, "op", where)
    _check_choice(scenario, SCENARIOS, "scenario", where)
    _check_choice(complexity, COMPLEXITIES[kind], f"complexity of a {kind}-image case", where)


def validate_case_arrays(case: PreparedCase, where: str) -> None:
    """Check sizes and non-emptiness of a case's images and masks (the builder's assumptions)."""
    height, width = case.scene.shape[:2]
    if case.gt.shape[:2] != (height, width):
        raise BadInputError(f"{where}: gt is {_size(case.gt)} but scene is {width}x{height}")
    if case.region.shape != (height, width):
        raise BadInputError(f"{where}: region is {_size(case.region)} but scene is {width}x{height}")
    if not case.region.any():
        raise BadInputError(f"{where}: the edit region is empty")
    if case.kind == "multi" and case.subject is None:
        raise BadInputError(f"{where}: a multi-image case needs a subject image")
    if case.kind == "single" and case.subject is not None:
        raise BadInputError(f"{where}: a single-image case takes no subject image")
    for mask_type, mask in case.masks.items():
        if mask_type not in MASK_CONDITIONS:
            raise BadInputError(f"{where}: unknown mask type {mask_type!r}{_did_you_mean(mask_type, MASK_CONDITIONS)} "
                                f"(known: {', '.join(MASK_CONDITIONS)})")
        if mask.shape != (height, width):
            raise BadInputError(f"{where}: mask {mask_type!r} is {_size(mask)} but scene is {width}x{height}")
        if not mask.any():
            raise BadInputError(f"{where}: mask {mask_type!r} is empty")


def region_from_difference(scene: np.ndarray, gt: np.ndarray,
                           dilation_px: int = DEFAULT_REGION_DILATION_PX) -> np.ndarray:
    """Pixels where scene and GT differ in any channel, dilated by a disk of radius ``dilation_px``."""
    from scipy import ndimage

    differs = np.any(scene != gt, axis=2)
    if dilation_px <= 0 or not differs.any():
        return differs
    offsets = np.arange(-dilation_px, dilation_px + 1)
    disk = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= dilation_px ** 2
    return ndimage.binary_dilation(differs, structure=disk)


def _read_case(raw, root: Path, base: Path, where: str, discover_masks: bool) -> PreparedCase:
    from fsmi_bench.io import load_mask, load_rgb

    if not isinstance(raw, dict):
        raise BadInputError(f"{where}: a case must be a JSON object, not {type(raw).__name__}")
    read_from = where
    where = f"{where}: case {str(raw.get('case_id', '?'))[:130]!r}"
    unknown = sorted(set(raw) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        known = _REQUIRED_KEYS + _OPTIONAL_KEYS
        raise BadInputError(f"{where}: unknown key {unknown[0]!r}{_did_you_mean(unknown[0], known)} "
                            f"(known: {', '.join(known)})")
    missing = [key for key in _REQUIRED_KEYS if key not in raw]
    if missing:
        raise BadInputError(f"{where}: missing key(s) {', '.join(missing)}")
    for key in ("instruction", "label"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise BadInputError(f"{where}: {key} must be a non-empty string")
    for key in ("clip_text", "origin"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise BadInputError(f"{where}: {key} must be a string, not {type(raw[key]).__name__}")
    kind = raw["kind"]
    complexity = raw.get("complexity", "none" if kind == "single" else None)
    if kind == "multi" and complexity is None:
        raise BadInputError(f"{where}: a multi-image case needs complexity 'simple' or 'complex'")
    validate_case_fields(raw["case_id"], kind, raw["op"], raw["scenario"], complexity, where)
    if kind == "multi" and raw.get("subject") is None:
        raise BadInputError(f"{where}: a multi-image case needs a subject image")
    if kind == "single" and raw.get("subject") is not None:
        raise BadInputError(f"{where}: a single-image case takes no subject image")
    if kind == "single" and raw.get("subject_mask") is not None:
        raise BadInputError(f"{where}: a single-image case takes no subject_mask (it has no subject image)")

    def image(key: str, loader):
        file = _inside(root, base, raw[key], key, where)
        try:
            return loader(file)
        except BadInputError as error:
            raise BadInputError(f"{where}: {key}: {error}") from None

    dilation = raw.get("region_dilation_px", DEFAULT_REGION_DILATION_PX)
    if not isinstance(dilation, int) or isinstance(dilation, bool) or not 0 <= dilation <= MAX_REGION_DILATION_PX:
        raise BadInputError(f"{where}: region_dilation_px must be a whole number from 0 to "
                            f"{MAX_REGION_DILATION_PX}, not {str(dilation)[:40]!r}")
    scene = image("scene", load_rgb)
    gt = image("gt", load_rgb)
    subject = image("subject", load_rgb) if kind == "multi" else None
    if gt.shape != scene.shape:
        raise BadInputError(f"{where}: gt {raw['gt']} is {_size(gt)} but scene is {_size(scene)}")
    subject_mask = None
    if subject is not None and raw.get("subject_mask") is not None:
        subject_mask = image("subject_mask", load_mask)
        if subject_mask.shape != subject.shape[:2]:
            raise BadInputError(f"{where}: subject_mask {raw['subject_mask']} is {_size(subject_mask)} but subject "
                                f"is {_size(subject)}")
        if not subject_mask.any():
            raise BadInputError(f"{where}: subject_mask {raw['subject_mask']} is empty (all black)")
    if raw.get("region") is not None:
        region = image("region", load_mask)
        if region.shape != scene.shape[:2]:
            raise BadInputError(f"{where}: region {raw['region']} is {_size(region)} but scene is {_size(scene)}")
        if not region.any():
            raise BadInputError(f"{where}: region {raw['region']} is empty (all black)")
    else:
        region = region_from_difference(scene, gt, dilation)
        if not region.any():
            raise BadInputError(f"{where}: scene {raw['scene']} and gt {raw['gt']} are identical, so the edit "
                                "region is empty; give a region mask")

    masks = {}
    for mask_type, relative in _mask_files(raw, base, discover_masks, where).items():
        if mask_type not in MASK_CONDITIONS:
            raise BadInputError(f"{where}: unknown mask type {mask_type!r}{_did_you_mean(mask_type, MASK_CONDITIONS)} "
                                f"(known: {', '.join(MASK_CONDITIONS)})")
        file = _inside(root, base, relative, f"mask {mask_type!r}", where)
        try:
            mask = load_mask(file)
        except BadInputError as error:
            raise BadInputError(f"{where}: mask {mask_type!r}: {error}") from None
        if mask.shape != scene.shape[:2]:
            raise BadInputError(f"{where}: mask {relative} is {_size(mask)} but scene is {_size(scene)}")
        if not mask.any():
            raise BadInputError(f"{where}: mask {relative} is empty (all black)")
        masks[mask_type] = mask

    case = PreparedCase(
        case_id=raw["case_id"], kind=kind, op=raw["op"], scenario=raw["scenario"], complexity=complexity,
        instruction=raw["instruction"].strip(), label=raw["label"].strip(),
        clip_text=(raw.get("clip_text") or raw["label"]).strip(), scene=scene, gt=gt, region=region,
        subject=subject, masks=masks, origin=raw.get("origin") or f"hand-made case from {read_from}",
        subject_mask=subject_mask)
    validate_case_arrays(case, where)
    return case


def _mask_files(raw: dict, base: Path, discover: bool, where: str) -> dict[str, str]:
    if "masks" in raw:
        masks = raw["masks"]
        if not isinstance(masks, dict) or not all(isinstance(value, str) for value in masks.values()):
            raise BadInputError(f"{where}: masks must be an object {{mask_type: path}}")
        return dict(sorted(masks.items()))
    if discover and (base / "masks").is_dir():
        return {file.stem: f"masks/{file.name}" for file in sorted((base / "masks").glob("*.png"))}
    return {}


def _inside(root: Path, base: Path, relative, key: str, where: str) -> Path:
    """``base/relative``, refusing absolute paths and paths that leave the source folder ``root``."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise BadInputError(f"{where}: {key} must be a relative file path, not {str(relative)[:80]!r}")
    if Path(relative).is_absolute():
        raise BadInputError(f"{where}: {key} path {relative!r} must be relative to the FSMI folder")
    resolved = (base / relative).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise BadInputError(f"{where}: {key} path {relative!r} points outside the FSMI folder {root}")
    return resolved


def _check_choice(value, choices, name: str, where: str) -> None:
    if value not in choices:
        hint = _did_you_mean(value, choices) if isinstance(value, str) else ""
        raise BadInputError(f"{where}: unknown {name} {value!r}{hint} (expected one of: {', '.join(choices)})")


def _did_you_mean(value: str, choices) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _size(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"


def _card(root: Path, cases: list[PreparedCase]) -> str:
    kinds = {kind: sum(case.kind == kind for case in cases) for kind in KINDS}
    lines = [f"## Source: FSMI folder `{root}`", "",
             f"{len(cases)} hand-made cases ({kinds['single']} single-image, {kinds['multi']} multi-image).", "",
             "| case | origin |", "| --- | --- |"]
    lines += [f"| {case.case_id} | {case.origin.replace('|', '/')} |" for case in cases]
    return "\n".join(lines) + "\n"
