"""The benchmark manifest: one JSON object per (case, mask condition), with the sha256 of every file.

Everything downstream (run, score, report, training) reads a benchmark only through
``load_benchmark``, which validates the manifest as a whole (each row's fields and types, names that
become path parts, one row per (case, mask condition), one case per id, a known benchmark version),
checks that paths stay inside the benchmark folder and, when asked, that every file still has the
sha256 the manifest recorded.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from fsmi_bench import BENCHMARK_VERSION
from fsmi_bench.errors import BadInputError, IntegrityError
from fsmi_bench.io import check_path_part, read_jsonl, sha256_bytes, sha256_file
from fsmi_bench.schema import COMPLEXITIES, KINDS, OPS, SCENARIOS

MANIFEST_NAME = "manifest.jsonl"
FILE_KEYS = ("scene", "subject", "gt", "region", "mask", "subject_mask")
# Benchmark versions whose manifests this fsmi reads; a newer build needs a newer fsmi.
KNOWN_BENCHMARK_VERSIONS = (BENCHMARK_VERSION,)
# Older versions, refused with what changed since: their cases differ from what this fsmi builds.
RETIRED_BENCHMARK_VERSIONS = {
    "fsmi-edit-1.0": "fsmi-edit-1.1 changed the composited cases: objects at plausible sizes standing on the lower "
                     "part of the scene, and the helmet cut-out without the black block around it",
}
# Fields that describe the case, not the mask condition: every row of one case must agree on them.
CASE_FIELDS = ("kind", "op", "scenario", "complexity", "instruction", "label", "clip_text", "width", "height",
               "scene", "scene_sha256", "gt", "gt_sha256", "region", "region_sha256", "subject", "subject_sha256",
               "subject_mask", "subject_mask_sha256",
               "benchmark_version", "source", "origins", "placement")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Larger scenes than this side could not have been decoded under any sane pixel limit.
_MAX_SIDE = 1 << 20


@dataclass(frozen=True)
class ManifestRow:
    """One (case, mask condition). Paths are relative to the benchmark folder."""

    case_id: str
    kind: str  # "single" or "multi"
    op: str  # "add", "replace" or "remove"
    scenario: str  # "indoor" or "outdoor"
    complexity: str  # "simple" or "complex" for multi-image cases, "none" for single-image cases
    mask_type: str  # "full" or one of the 8 free-shape types
    instruction: str
    label: str  # class label of the object the edit is about
    clip_text: str  # the text CLIP-T compares the edited region with
    seed: int
    width: int
    height: int
    scene: str
    scene_sha256: str
    gt: str
    gt_sha256: str
    region: str
    region_sha256: str
    mask: str
    mask_sha256: str
    mask_iou: float  # IoU of this mask with the edit region
    mask_coverage: float  # fraction of the edit region that this mask covers
    mask_params: dict
    benchmark_version: str
    source: str
    origins: dict  # where the scene and object photos come from
    subject: str | None = None
    subject_sha256: str | None = None
    extra: dict = field(default_factory=dict)
    # the subject's own pixels in the subject image (True = object); absent in benchmarks built before it
    subject_mask: str | None = None
    subject_mask_sha256: str | None = None
    # composited cases: where each pasted object went and under which size and base rule
    # ({"object": {...}, "replaced_object": {...}}, see compose.Placement.record); empty for prepared cases
    placement: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def shape_overlap(self) -> tuple[float, float]:
        """(IoU, coverage) of the edit region by the shape the user drew, each in [0, 1]: the mask's own for
        a filled shape; for an ``_open`` outline, those of the area it encloses (``filled_iou`` and
        ``filled_coverage`` of its drawing), since the stroke's own pixels overlap the region by a few per
        cent however loose the loop is. NaN for an outline whose enclosed area was not recorded (hand-drawn)."""
        if not self.mask_type.endswith("_open"):
            return float(self.mask_iou), float(self.mask_coverage)
        iou, coverage = self.mask_params.get("filled_iou"), self.mask_params.get("filled_coverage")
        if not all(isinstance(value, (int, float)) and math.isfinite(value) for value in (iou, coverage)):
            return math.nan, math.nan
        return float(iou), float(coverage)

    @classmethod
    def from_json(cls, row: dict) -> "ManifestRow":
        """A row from its JSON object, every field checked (``BadInputError`` with one line otherwise)."""
        if not isinstance(row, dict):
            raise BadInputError(f"manifest row must be a JSON object, not {type(row).__name__}")
        names = {f.name for f in fields(cls)}
        optional = ("subject", "subject_sha256", "extra", "subject_mask", "subject_mask_sha256", "placement")
        missing = [f.name for f in fields(cls) if f.name not in row and f.name not in optional]
        if missing:
            raise BadInputError(f"manifest row for {str(row.get('case_id', '?'))[:80]!r} lacks fields: "
                                f"{', '.join(missing)}")
        values = {key: value for key, value in row.items() if key in names}
        _check_row_fields(values)
        return cls(**values)


def _check_row_fields(row: dict) -> None:
    """Types and values of one manifest row's fields; names that become path parts matched whole."""
    check_path_part(row["case_id"], "case_id")
    where = f"manifest row {row['case_id']}"
    check_path_part(row["mask_type"], f"{where}: mask_type")
    where = f"{where}/{row['mask_type']}"
    for name in ("instruction", "label", "clip_text", "source", "scene", "gt", "region", "mask",
                 "benchmark_version"):
        if not isinstance(row[name], str):
            raise BadInputError(f"{where}: {name} must be a string, not {type(row[name]).__name__}")
    for name in ("subject", "subject_sha256", "subject_mask", "subject_mask_sha256"):
        if row.get(name) is not None and not isinstance(row[name], str):
            raise BadInputError(f"{where}: {name} must be a string or null, not {type(row[name]).__name__}")
    for name, choices in (("kind", KINDS), ("op", OPS), ("scenario", SCENARIOS)):
        if row[name] not in choices:
            raise BadInputError(f"{where}: {name} {row[name]!r} is not one of {', '.join(choices)}")
    if row["complexity"] not in COMPLEXITIES[row["kind"]]:
        raise BadInputError(f"{where}: complexity {row['complexity']!r} is not one of "
                            f"{', '.join(COMPLEXITIES[row['kind']])} for a {row['kind']} case")
    for name in ("seed", "width", "height"):
        if not isinstance(row[name], int) or isinstance(row[name], bool):
            raise BadInputError(f"{where}: {name} must be an integer, not {row[name]!r}")
    if not (1 <= row["width"] <= _MAX_SIDE and 1 <= row["height"] <= _MAX_SIDE) or row["seed"] < 0:
        raise BadInputError(f"{where}: width {row['width']}, height {row['height']} and seed {row['seed']} must "
                            "be positive")
    for name in ("mask_iou", "mask_coverage"):
        value = row[name]
        if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                or not 0.0 <= value <= 1.0):
            raise BadInputError(f"{where}: {name} must be a number in [0, 1], not {value!r}")
    for name in ("mask_params", "origins", "extra", "placement"):
        if name in row and not isinstance(row[name], dict):
            raise BadInputError(f"{where}: {name} must be a JSON object, not {type(row[name]).__name__}")
    for key in FILE_KEYS:
        digest = row.get(f"{key}_sha256")
        if row.get(key) is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
            raise BadInputError(f"{where}: {key}_sha256 must be 64 lowercase hex digits, not {digest!r}")
    if row["benchmark_version"] in RETIRED_BENCHMARK_VERSIONS:
        raise BadInputError(f"this benchmark was built as {row['benchmark_version']!r}, which this fsmi no longer "
                            f"reads ({RETIRED_BENCHMARK_VERSIONS[row['benchmark_version']]}); rebuild it with "
                            "`fsmi build` (the command is in its README.md), or use the fsmi that built it")
    if row["benchmark_version"] not in KNOWN_BENCHMARK_VERSIONS:
        raise BadInputError(f"{where}: benchmark version {row['benchmark_version']!r} is not one this fsmi reads "
                            f"({', '.join(KNOWN_BENCHMARK_VERSIONS)}); rebuild it with this fsmi, or use the "
                            "fsmi that built it")


def check_rows_agree(rows: tuple[ManifestRow, ...]) -> None:
    """One row per (case, mask condition), and one case per id: its rows agree on every case field."""
    first_of_case: dict[str, ManifestRow] = {}
    seen: set[tuple[str, str]] = set()
    for row in rows:
        first = first_of_case.setdefault(row.case_id, row)
        for name in CASE_FIELDS:
            if getattr(row, name) != getattr(first, name):
                raise BadInputError(f"manifest rows of case {row.case_id} disagree on {name} ({first.mask_type}: "
                                    f"{str(getattr(first, name))[:60]!r}, {row.mask_type}: "
                                    f"{str(getattr(row, name))[:60]!r}); two cases share one id")
        key = (row.case_id, row.mask_type)
        if key in seen:
            raise BadInputError(f"manifest has two rows for case {row.case_id}, mask type {row.mask_type}")
        seen.add(key)


@dataclass(frozen=True)
class Benchmark:
    root: Path
    rows: tuple[ManifestRow, ...]
    manifest_sha256: str

    @functools.cached_property
    def version(self) -> str:
        versions = {row.benchmark_version for row in self.rows}
        return versions.pop() if len(versions) == 1 else "mixed"

    def case_ids(self) -> list[str]:
        return sorted({row.case_id for row in self.rows})

    def rows_for(self, case_id: str) -> list[ManifestRow]:
        return [row for row in self.rows if row.case_id == case_id]

    def path(self, relative: str) -> Path:
        return self.root / relative


def resolve_inside(root: Path, relative: str, resolved_root: Path | None = None) -> Path:
    """The absolute path of ``relative`` under ``root`` (``resolved_root``: ``root.resolve()``, if known);
    refuses paths that leave ``root``."""
    if not isinstance(relative, str) or not relative or "\x00" in relative or Path(relative).is_absolute():
        raise BadInputError(f"manifest path {relative!r} must be relative to the benchmark folder")
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(resolved_root or root.resolve()):
        raise BadInputError(f"manifest path {relative!r} points outside the benchmark folder {root}")
    return resolved


@dataclass
class _Loaded:
    """What a ``verify_each_file_once`` block has read: files' sha256 by (path, size, mtime, ctime, inode),
    and benchmarks (with their files' paths and sha256) by (folder, and the manifest's size, times, inode)."""

    files: dict = field(default_factory=dict)
    benchmarks: dict = field(default_factory=dict)


_LOADED: contextvars.ContextVar[_Loaded | None] = contextvars.ContextVar("fsmi_loaded_benchmarks", default=None)


@contextlib.contextmanager
def verify_each_file_once():
    """Within the block, ``load_benchmark`` reads an unchanged manifest once, and with ``verify`` hashes a
    file only if it changed (path, size, times or inode) since it was verified in the block: for a chain of
    stages (``fsmi quickstart``) that each load the benchmark they were given."""
    token = _LOADED.set(_Loaded())
    try:
        yield
    finally:
        _LOADED.reset(token)


def _signature(path: Path) -> tuple:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def _file_sha256(path: Path) -> str:
    loaded = _LOADED.get()
    if loaded is None:
        return sha256_file(path)
    key = _signature(path)
    if key not in loaded.files:
        loaded.files[key] = sha256_file(path)
    return loaded.files[key]


def _verify_file(root: Path, relative: str, path: Path, expected: str) -> None:
    if not path.is_file():
        raise IntegrityError(f"{relative} is listed in the manifest but missing from {root}")
    if _file_sha256(path) != expected:
        raise IntegrityError(f"{relative} no longer matches the sha256 in {root / MANIFEST_NAME}; rebuild the "
                             "benchmark or restore the file")


def load_benchmark(root: str | Path, verify: bool = True) -> Benchmark:
    """Read ``root/manifest.jsonl``; with ``verify``, check each file's sha256 (each file once)."""
    root = Path(root)
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise BadInputError(f"{root} is not a benchmark folder (no {MANIFEST_NAME}); build one with `fsmi build`")
    loaded = _LOADED.get()
    key = _signature(manifest.resolve()) if loaded is not None else None
    if key in (loaded.benchmarks if loaded is not None else {}):
        rows, files, manifest_sha256 = loaded.benchmarks[key]
    else:
        rows, files, manifest_sha256 = _read_manifest(root, manifest)
        if loaded is not None:
            loaded.benchmarks[key] = rows, files, manifest_sha256
    if verify:
        for relative, (path, expected) in files.items():
            _verify_file(root, relative, path, expected)
    return Benchmark(root=root, rows=rows, manifest_sha256=manifest_sha256)


def _read_manifest(root: Path, manifest: Path) -> tuple[tuple[ManifestRow, ...], dict, str]:
    """(rows, {relative path: (resolved path, recorded sha256)}, the manifest's sha256), every row checked."""
    data = manifest.read_bytes()
    raw = read_jsonl(manifest)
    if not raw:
        raise BadInputError(f"{manifest} is empty")
    rows = []
    for number, row in enumerate(raw, start=1):
        try:
            rows.append(ManifestRow.from_json(row))
        except BadInputError as error:
            raise BadInputError(f"{manifest}: row {number}: {error}") from None
    rows = tuple(rows)
    try:
        check_rows_agree(rows)
    except BadInputError as error:
        raise BadInputError(f"{manifest}: {error}") from None
    files: dict[str, tuple[Path, str]] = {}  # each path once: cases share their scene, GT and region across masks
    resolved_root = root.resolve()
    for row in rows:
        for key in FILE_KEYS:
            relative = getattr(row, key)
            if relative is None or relative in files:
                continue
            try:
                files[relative] = resolve_inside(root, relative, resolved_root), getattr(row, f"{key}_sha256")
            except BadInputError as error:
                raise BadInputError(f"{manifest}: case {row.case_id}: {error}") from None
    return rows, files, sha256_bytes(data)
