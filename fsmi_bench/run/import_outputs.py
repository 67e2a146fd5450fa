"""Outputs made elsewhere -> a run folder that ``fsmi score`` and ``fsmi report`` read like any other.

Two layouts are accepted (``--from``):
- a folder ``FROM/<case_id>/<mask_type>.png`` (``.jpg``, ``.jpeg`` and ``.webp`` too), as ``fsmi run``
  writes under ``outputs/``;
- a CSV file with the header ``case_id,mask_type,path``, one row per output, each path absolute or
  relative to the CSV's folder.

Each image is checked as ``fsmi run`` checks a method's output: it must decode completely; grayscale,
palette and RGBA images become RGB (alpha dropped, the original mode recorded); an image of another size
than the scene is resized by the run engine's rule and its original size recorded in
``size_mapping.resized``. Outputs are re-encoded the way the engine writes them. A selected (case, mask
condition) without a usable file is a row of the failures file ("missing" or "invalid"), so it is
scored as a failed case, never skipped.

run.json holds the usual run record plus ``provenance: "imported"`` and ``imported``: the source, its
layout, the sha256 of every file read, and what was missing, invalid, converted or left unmatched.
"""

from __future__ import annotations

import csv
import datetime
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import fsmi_bench
from fsmi_bench.benchmark.manifest import Benchmark, ManifestRow, load_benchmark
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_bytes, atomic_write_text, ensure_writable_dir, sha256_file
from fsmi_bench.provenance import git_commit, package_versions
from fsmi_bench.run.engine import encode_output_png, map_to_scene_size, select_rows
from fsmi_bench.run.folder import OUTPUTS_DIR, failures_file, output_path, read_run_file, run_files
from fsmi_bench.run.record import EditKey, FailureLog, RunCounts, RunIdentity, RunRecord, RunSelection, SizeMapping
from fsmi_bench.schema import KINDS, METHOD_NAME_PATTERN

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
CSV_COLUMNS = ("case_id", "mask_type", "path")
IMPORTED = "imported"
# Image modes turned into RGB without loss of what a metric reads (alpha is dropped, as for a method's output).
CONVERTIBLE_MODES = ("L", "LA", "P", "PA", "RGBA", "RGBX")
_UNMATCHED_LISTED = 50


@dataclass(frozen=True)
class ImportConfig:
    """What ``fsmi import-outputs`` was asked to do.

    source: a folder in the ``<case_id>/<mask_type>.png`` layout, or a CSV file (``case_id,mask_type,path``).
    method_name: the name the outputs carry in results and reports.
    mask_types / kinds: the (case, mask condition) pairs expected (None = every mask type of the benchmark);
    a pair outside them is not counted as missing.
    """

    bench: Path
    source: Path
    method_name: str
    out: Path
    mask_types: tuple[str, ...] | None = None
    kinds: tuple[str, ...] = KINDS
    progress: bool = True


@dataclass(frozen=True)
class ImportedFile:
    """One source file used for an output: where it was, its sha256, and what was done to it."""

    path: str
    sha256: str
    original_size: list[int] | None = None  # [width, height] when resized to the scene's size
    original_mode: str | None = None  # the PIL mode when it was not RGB


@dataclass(frozen=True)
class ImportSummary:
    """Counts of one import: ``missing`` and ``invalid`` together are the failed pairs."""

    out: Path
    expected: int
    imported: int
    resized: int
    missing: int
    invalid: int
    unmatched: int
    elapsed_s: float

    def line(self, method_name: str) -> str:
        return (f"{method_name}: {self.imported} of {self.expected} outputs imported ({self.resized} resized), "
                f"{self.missing} missing, {self.invalid} invalid, {self.unmatched} files matched no case "
                f"in {self.elapsed_s:.1f} s -> {self.out}")


@dataclass(frozen=True)
class ImportProvenance:
    """run.json's ``imported``: the source, its layout, every file read (by ``case_id/mask_type``) and
    what could not be used."""

    source: str
    layout: str  # "folder" or "csv"
    source_sha256: str | None  # the CSV file's, for the csv layout
    files: dict[str, ImportedFile]
    missing: list[str]
    invalid: dict[str, str]
    unmatched: list[str]
    unmatched_count: int
    imported_at: str = field(default="")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def find_folder_files(source: Path, benchmark: Benchmark) -> tuple[dict[EditKey, Path], list[str]]:
    """``<case_id>/<mask_type>.<suffix>`` files of ``source``: those that name a benchmark row, and the
    relative paths of the other files (unmatched)."""
    known = {EditKey(row.case_id, row.mask_type) for row in benchmark.rows}
    found: dict[EditKey, Path] = {}
    unmatched: list[str] = []
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        relative = path.relative_to(source)
        key = EditKey(relative.parts[0], path.stem) if len(relative.parts) == 2 else None
        if key is None or key not in known or path.suffix.lower() not in IMAGE_SUFFIXES:
            unmatched.append(relative.as_posix())
        elif key in found:
            raise BadInputError(f"two files for {key.label} in {source}: {found[key].name} and {path.name}; "
                                "keep one")
        else:
            found[key] = path
    return found, unmatched


def read_mapping_csv(source: Path, benchmark: Benchmark) -> tuple[dict[EditKey, Path], list[str]]:
    """The rows of a ``case_id,mask_type,path`` CSV: those that name a benchmark row, and the other rows
    (as ``case_id/mask_type``, unmatched)."""
    known = {EditKey(row.case_id, row.mask_type) for row in benchmark.rows}
    try:
        with open(source, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = tuple(name.strip() for name in (reader.fieldnames or ()))
            missing_columns = [name for name in CSV_COLUMNS if name not in header]
            if missing_columns:
                raise BadInputError(f"{source}: needs the columns {', '.join(CSV_COLUMNS)} "
                                    f"(missing {', '.join(missing_columns)}; found {', '.join(header) or 'none'})")
            rows = [{key.strip(): (value or "").strip() for key, value in row.items() if key} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BadInputError(f"cannot read {source}: {error}") from None
    found: dict[EditKey, Path] = {}
    unmatched: list[str] = []
    for line_number, row in enumerate(rows, start=2):
        key = EditKey(row["case_id"], row["mask_type"])
        if not row["path"]:
            raise BadInputError(f"{source} line {line_number}: empty path")
        if key not in known:
            unmatched.append(key.label)
            continue
        if key in found:
            raise BadInputError(f"{source} line {line_number}: a second row for {key.label}")
        path = Path(row["path"]).expanduser()
        found[key] = path if path.is_absolute() else source.parent / path
    return found, unmatched


def check_image(path: Path, width: int, height: int) -> tuple[np.ndarray, ImportedFile]:
    """Decode ``path`` completely and map it to an RGB uint8 image of (width, height), as ``fsmi run`` maps a
    method's output. Raises ``BadInputError`` with the reason for a file that cannot be used."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode != "RGB":
                if mode not in CONVERTIBLE_MODES:
                    raise BadInputError(f"image mode {mode} is not RGB, grayscale, palette or RGBA")
                image = image.convert("RGBA" if "A" in mode or mode == "P" else "RGB")
            array = np.asarray(image)
    except BadInputError:
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise BadInputError(f"does not decode as an image ({error})") from None
    mapped, original_size = map_to_scene_size(array, width, height)
    record = ImportedFile(path=str(path), sha256=sha256_file(path),
                          original_size=None if original_size is None else list(original_size),
                          original_mode=None if mode == "RGB" else mode)
    return mapped, record


def _check_out_folder(out: Path, identity: RunIdentity) -> None:
    """Refuse a folder that holds a run other than an earlier import of these outputs (same name, same
    benchmark build), which is replaced."""
    existing = run_files(out)
    for _, path in existing:
        info = read_run_file(path)
        same = (info.get("provenance") == IMPORTED and info.get("method") == identity.method
                and info.get("manifest_sha256") == identity.manifest_sha256)
        if not same:
            raise BadInputError(f"{out} already holds another run ({path.name}: method {info.get('method')!r}); "
                                "use another --out folder")
    if not existing and out.is_dir() and any(out.iterdir()):
        raise BadInputError(f"{out} is not empty and holds no run; use a new or empty --out folder")


def _progress(total: int, enabled: bool, name: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"import {name}", unit="image", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True)


def import_outputs(config: ImportConfig) -> ImportSummary:
    """Check and copy outputs made elsewhere into a run folder at ``config.out``; see the module docstring."""
    started = time.perf_counter()
    name = (config.method_name or "").strip()
    if not re.fullmatch(METHOD_NAME_PATTERN, name):
        raise BadInputError(f"--method-name {name[:80]!r}: letters, digits, spaces and _ . : / + - only, "
                            "e.g. my-method")
    source = Path(config.source).expanduser()
    if not source.exists():
        raise BadInputError(f"--from {source}: no such folder or file")
    layout = "csv" if source.is_file() else "folder"
    if layout == "csv" and source.suffix.lower() != ".csv":
        raise BadInputError(f"--from {source}: give a folder of <case_id>/<mask_type>.png or a .csv mapping file")
    benchmark = load_benchmark(config.bench, verify=True)
    rows: list[ManifestRow] = select_rows(benchmark, config.mask_types, tuple(config.kinds))
    if layout == "csv":
        found, unmatched = read_mapping_csv(source, benchmark)
    else:
        found, unmatched = find_folder_files(source, benchmark)

    identity = RunIdentity(method=name, method_config={"imported_from": str(source.resolve())}, seed=None,
                           manifest_sha256=benchmark.manifest_sha256)
    out = Path(config.out)
    if out.exists():
        _check_out_folder(out, identity)
    root = ensure_writable_dir(out)
    failures_path = failures_file(root, None)
    failures_path.unlink(missing_ok=True)  # a re-import starts its failures afresh
    failures = FailureLog(failures_path)

    files: dict[str, ImportedFile] = {}
    missing: list[str] = []
    invalid: dict[str, str] = {}
    resized: dict[str, list[int]] = {}
    progress = _progress(len(rows), config.progress, name)
    for row in rows:
        key = EditKey(row.case_id, row.mask_type)
        target = output_path(root, row.case_id, row.mask_type)
        path = found.get(key)
        error = None
        if path is None or not path.is_file():
            missing.append(key.label)
            error = f"missing: no output file for {key.label}" + (f" ({path})" if path is not None else "")
        else:
            try:
                image, record = check_image(path, row.width, row.height)
            except BadInputError as reason:
                invalid[key.label] = f"{path}: {reason}"
                error = f"invalid: {path}: {reason}"
        if error is not None:
            # A stale output from an earlier import would hide the failure from the scorer.
            target.unlink(missing_ok=True)
            failures.errors[key] = error
        else:
            atomic_write_bytes(target, encode_output_png(image))
            files[key.label] = record
            if record.original_size is not None:
                resized[key.label] = record.original_size
        progress.update(1)
    progress.close()
    failures.save()
    _remove_outputs_outside(root, {EditKey(*label.split("/", 1)) for label in files})

    now = _now()
    counts = RunCounts(selected=len(rows), written=len(files), skipped=0, failed=len(missing) + len(invalid))
    record = RunRecord(
        identity=identity, weights={}, package_versions=package_versions(), git_commit=git_commit(),
        fsmi_version=fsmi_bench.__version__, benchmark_dir=str(Path(config.bench).resolve()),
        benchmark_version=benchmark.version, size_mapping=SizeMapping(resized=resized), shard=None,
        selection=RunSelection(mask_types=None if config.mask_types is None else list(config.mask_types),
                               kinds=list(config.kinds), limit=None),
        device="none", created_at=now, status="complete" if not counts.failed else "complete_with_failures",
        finished_at=now, counts=counts)
    provenance = ImportProvenance(
        source=str(source.resolve()), layout=layout,
        source_sha256=sha256_file(source) if layout == "csv" else None, files=files, missing=missing,
        invalid=invalid, unmatched=unmatched[:_UNMATCHED_LISTED], unmatched_count=len(unmatched), imported_at=now)
    atomic_write_text(root / "run.json", run_json(record, provenance))
    return ImportSummary(out=root, expected=len(rows), imported=len(files), resized=len(resized),
                         missing=len(missing), invalid=len(invalid), unmatched=len(unmatched),
                         elapsed_s=time.perf_counter() - started)


def run_json(record: RunRecord, provenance: ImportProvenance) -> str:
    """run.json's text for an imported run: the run record, ``provenance: "imported"`` and ``imported``
    (keys sorted at every level, two-space indent, as ``RunRecord.to_json``)."""
    from dataclasses import asdict

    content = record.as_dict()
    content["provenance"] = IMPORTED
    content["imported"] = asdict(provenance)
    return json.dumps(content, indent=2, sort_keys=True)


def _remove_outputs_outside(root: Path, kept: set[EditKey]) -> None:
    """Delete outputs of an earlier import that this one did not write, so the folder holds this import only."""
    outputs = root / OUTPUTS_DIR
    if not outputs.is_dir():
        return
    for path in outputs.glob("*/*.png"):
        if EditKey(path.parent.name, path.stem) not in kept:
            path.unlink()
    for folder in outputs.iterdir():
        if folder.is_dir() and not any(folder.iterdir()):
            shutil.rmtree(folder)
