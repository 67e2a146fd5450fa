"""Export a built benchmark as a Hugging Face ``datasets`` folder (``save_to_disk``), or as an FSMI
folder (``export_fsmi``: ``cases.jsonl`` and the case files, read back by ``fsmi build --source fsmi:OUT``).

One row per case. Image columns hold the benchmark's PNG files byte for byte (``Image`` features fed
with the file bytes), so pixels and sha256 survive the round trip; ``load_hf_disk`` reads the folder
back as ``PreparedCase`` objects. The schema is documented in ``sources/FORMATS.md``:

- text: case_id, kind, op, scenario, complexity, instruction, label, clip_text, benchmark_version,
  source; int: seed, width, height (pixels)
- images: scene, subject (None for single-image cases), gt, region (0/255 grayscale, 255 = edit),
  subject_mask (0/255, 255 = the subject's own pixels; None for single-image cases and older builds),
  and ``mask_<type>`` for each of the 9 mask conditions (0/255, 255 = region to edit; None when the
  benchmark lacks that condition for the case)
- JSON strings: mask_params ({mask_type: generator parameters}), mask_stats ({mask_type: {"iou",
  "coverage"}}), origins (where the scene and object photos come from)

The folder is written under a temporary sibling name and renamed at the end, so a killed export never
leaves a half-written ``OUT``. The benchmark's card (README.md) is copied beside the data.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fsmi_bench.errors import BadInputError
from fsmi_bench.schema import (
    EXPORT_IMAGE_COLUMNS,
    EXPORT_INT_COLUMNS,
    EXPORT_JSON_COLUMNS,
    EXPORT_MASK_COLUMNS,
    EXPORT_TEXT_COLUMNS,
    MASK_CONDITIONS,
)

EXPORT_FORMATS = ("hf", "fsmi")
CARD_NAME = "README.md"


@dataclass(frozen=True)
class ExportSummary:
    """What ``export_hf`` wrote."""

    out_dir: Path
    cases: int
    mask_conditions: int  # mask images written, over all cases
    benchmark_version: str
    manifest_sha256: str


def export_features():
    """The ``datasets.Features`` of an exported benchmark."""
    from datasets import Features, Image, Value

    columns = {name: Value("string") for name in EXPORT_TEXT_COLUMNS}
    columns.update({name: Value("int64") for name in EXPORT_INT_COLUMNS})
    columns.update({name: Image() for name in EXPORT_IMAGE_COLUMNS + EXPORT_MASK_COLUMNS})
    columns.update({name: Value("string") for name in EXPORT_JSON_COLUMNS})
    return Features(columns)


def export_hf(bench_dir: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False,
              progress: bool = True) -> ExportSummary:
    """Write the benchmark at ``bench_dir`` (sha256-verified) as a ``datasets`` folder at ``out_dir``.

    Refuses a non-empty ``out_dir`` unless ``overwrite``; raises ``IntegrityError`` when a benchmark
    file no longer matches its manifest sha256.
    """
    import datasets
    from tqdm import tqdm

    out_dir = Path(out_dir)
    benchmark = _verified_benchmark(bench_dir, out_dir, overwrite)
    case_ids = benchmark.case_ids()

    def rows():
        for case_id in tqdm(case_ids, desc="export", unit="case", disable=not progress):
            yield _case_row(benchmark, case_id)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.export-"))
    bars_were_on = datasets.is_progress_bar_enabled()
    try:
        if not progress:
            datasets.disable_progress_bars()
        # The generator's cache goes inside the staging folder, not the user's HF cache, and leaves with it.
        dataset = datasets.Dataset.from_generator(rows, features=export_features(),
                                                  cache_dir=str(staging / "cache"))
        dataset.save_to_disk(str(staging / "data"))
        card = benchmark.root / CARD_NAME
        if card.is_file():
            shutil.copyfile(card, staging / "data" / CARD_NAME)
        del dataset  # release the memory-mapped cache files before they are deleted
        _replace_folder(staging / "data", out_dir)
    finally:
        if bars_were_on and not progress:
            datasets.enable_progress_bars()
        shutil.rmtree(staging, ignore_errors=True)
    masks = sum(1 for row in benchmark.rows if row.mask_type in MASK_CONDITIONS)
    return ExportSummary(out_dir=out_dir, cases=len(case_ids), mask_conditions=masks,
                         benchmark_version=benchmark.version, manifest_sha256=benchmark.manifest_sha256)


def export_fsmi(bench_dir: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False,
                progress: bool = True) -> ExportSummary:
    """Write the benchmark at ``bench_dir`` (sha256-verified) as an FSMI folder at ``out_dir``: one
    ``cases.jsonl`` line per case (tags, instruction, label, clip_text, scene, gt, region, subject,
    subject_mask and every mask condition as ``masks``) and the PNG files byte for byte, at the paths
    they have in the benchmark. Same refusals as ``export_hf``."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    benchmark = _verified_benchmark(bench_dir, out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.export-"))
    try:
        lines = []
        for case_id in tqdm(benchmark.case_ids(), desc="export", unit="case", disable=not progress):
            rows = {row.mask_type: row for row in _agreeing_rows(benchmark, case_id)}
            first = next(iter(rows.values()))
            case = {"case_id": case_id, "kind": first.kind, "op": first.op, "scenario": first.scenario,
                    "complexity": first.complexity, "instruction": first.instruction, "label": first.label,
                    "clip_text": first.clip_text, "scene": first.scene, "gt": first.gt, "region": first.region,
                    "masks": {mask_type: row.mask for mask_type, row in rows.items()},
                    "origin": json.dumps(first.origins, sort_keys=True)}
            if first.subject is not None:
                case["subject"] = first.subject
                if first.subject_mask is not None:
                    case["subject_mask"] = first.subject_mask
            for relative in [case["scene"], case["gt"], case["region"], *case["masks"].values(),
                             case.get("subject"), case.get("subject_mask")]:
                if relative is not None:
                    (staging / "data" / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(benchmark.path(relative), staging / "data" / relative)
            lines.append(json.dumps(case, sort_keys=True))
        (staging / "data" / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        card = benchmark.root / CARD_NAME
        if card.is_file():
            shutil.copyfile(card, staging / "data" / CARD_NAME)
        _replace_folder(staging / "data", out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    masks = sum(1 for row in benchmark.rows if row.mask_type in MASK_CONDITIONS)
    return ExportSummary(out_dir=out_dir, cases=len(benchmark.case_ids()), mask_conditions=masks,
                         benchmark_version=benchmark.version, manifest_sha256=benchmark.manifest_sha256)


def _verified_benchmark(bench_dir, out_dir: Path, overwrite: bool):
    """The benchmark, verified against its sha256, after checking that ``out_dir`` may be written."""
    from fsmi_bench.benchmark.manifest import load_benchmark

    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"output {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise BadInputError(f"output folder {out_dir} is not empty; choose another --out or pass --overwrite")
    benchmark = load_benchmark(bench_dir, verify=True)
    if out_dir.resolve().is_relative_to(benchmark.root.resolve()):
        raise BadInputError(f"output folder {out_dir} must not be inside the benchmark folder {benchmark.root}")
    if benchmark.root.resolve().is_relative_to(out_dir.resolve()):
        raise BadInputError(f"output folder {out_dir} holds the benchmark {benchmark.root}; choose another --out")
    return benchmark


def _agreeing_rows(benchmark, case_id: str) -> list:
    """The case's rows in MASK_CONDITIONS order, after checking that they agree on the case's fields."""
    rows = {row.mask_type: row for row in benchmark.rows_for(case_id)}
    unknown = sorted(set(rows) - set(MASK_CONDITIONS))
    if unknown:
        raise BadInputError(f"case {case_id}: unknown mask condition {unknown[0]!r} in the manifest")
    ordered = [rows[mask_type] for mask_type in MASK_CONDITIONS if mask_type in rows]
    for row in ordered:
        for key in ("kind", "op", "scenario", "complexity", "instruction", "label", "clip_text", "scene", "gt",
                    "region", "subject", "subject_mask", "width", "height"):
            if getattr(row, key) != getattr(ordered[0], key):
                raise BadInputError(f"case {case_id}: manifest rows disagree on {key} "
                                    f"({ordered[0].mask_type} vs {row.mask_type})")
    return ordered


def _case_row(benchmark, case_id: str) -> dict:
    ordered = _agreeing_rows(benchmark, case_id)
    rows, first = {row.mask_type: row for row in ordered}, ordered[0]

    def image(relative):
        # The verified PNG bytes themselves: no re-encoding, so pixels and sha256 are kept.
        return None if relative is None else {"bytes": benchmark.path(relative).read_bytes(), "path": None}

    record = {name: getattr(first, name) for name in EXPORT_TEXT_COLUMNS + EXPORT_INT_COLUMNS}
    record.update({name: image(getattr(first, name)) for name in EXPORT_IMAGE_COLUMNS})
    for mask_type, column in zip(MASK_CONDITIONS, EXPORT_MASK_COLUMNS):
        record[column] = image(rows[mask_type].mask) if mask_type in rows else None
    record["mask_params"] = json.dumps({t: rows[t].mask_params for t in MASK_CONDITIONS if t in rows}, sort_keys=True)
    record["mask_stats"] = json.dumps({t: {"iou": rows[t].mask_iou, "coverage": rows[t].mask_coverage}
                                       for t in MASK_CONDITIONS if t in rows}, sort_keys=True)
    record["origins"] = json.dumps(first.origins, sort_keys=True)
    return record


def _replace_folder(new: Path, target: Path) -> None:
    """Move the finished folder ``new`` to ``target``; an old ``target`` is removed only afterwards."""
    if not target.exists():
        os.replace(new, target)
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
