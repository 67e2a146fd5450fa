"""The benchmark manifest: one JSON object per (case, mask condition), with the sha256 of every file.

Everything downstream (run, score, report, training) reads a benchmark only through
``load_benchmark``, which checks that paths stay inside the benchmark folder and, when asked,
that every file still has the sha256 the manifest recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from fsmi_bench.errors import BadInputError, IntegrityError
from fsmi_bench.io import read_jsonl, sha256_bytes, sha256_file

MANIFEST_NAME = "manifest.jsonl"
FILE_KEYS = ("scene", "subject", "gt", "region", "mask", "subject_mask")


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

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> "ManifestRow":
        names = {f.name for f in fields(cls)}
        optional = ("subject", "subject_sha256", "extra", "subject_mask", "subject_mask_sha256")
        missing = [f.name for f in fields(cls) if f.name not in row and f.name not in optional]
        if missing:
            raise BadInputError(f"manifest row for {row.get('case_id', '?')} lacks fields: {', '.join(missing)}")
        return cls(**{key: value for key, value in row.items() if key in names})


@dataclass(frozen=True)
class Benchmark:
    root: Path
    rows: tuple[ManifestRow, ...]
    manifest_sha256: str

    @property
    def version(self) -> str:
        versions = {row.benchmark_version for row in self.rows}
        return versions.pop() if len(versions) == 1 else "mixed"

    def case_ids(self) -> list[str]:
        return sorted({row.case_id for row in self.rows})

    def rows_for(self, case_id: str) -> list[ManifestRow]:
        return [row for row in self.rows if row.case_id == case_id]

    def path(self, relative: str) -> Path:
        return self.root / relative


def resolve_inside(root: Path, relative: str) -> Path:
    """The absolute path of ``relative`` under ``root``; refuses paths that leave ``root``."""
    if relative is None or Path(relative).is_absolute():
        raise BadInputError(f"manifest path {relative!r} must be relative to the benchmark folder")
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise BadInputError(f"manifest path {relative!r} points outside the benchmark folder {root}")
    return resolved


def load_benchmark(root: str | Path, verify: bool = True) -> Benchmark:
    """Read ``root/manifest.jsonl``; with ``verify``, check each file's sha256 (each file once)."""
    root = Path(root)
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise BadInputError(f"{root} is not a benchmark folder (no {MANIFEST_NAME}); build one with `fsmi build`")
    raw = read_jsonl(manifest)
    if not raw:
        raise BadInputError(f"{manifest} is empty")
    rows = tuple(ManifestRow.from_json(row) for row in raw)
    checked: dict[str, str] = {}
    for row in rows:
        for key in FILE_KEYS:
            relative = getattr(row, key)
            if relative is None:
                continue
            path = resolve_inside(root, relative)
            if not verify or relative in checked:
                continue
            if not path.is_file():
                raise IntegrityError(f"{relative} is listed in the manifest but missing from {root}")
            checked[relative] = sha256_file(path)
            if checked[relative] != getattr(row, f"{key}_sha256"):
                raise IntegrityError(
                    f"{relative} no longer matches the sha256 in {manifest}; rebuild the benchmark "
                    "or restore the file")
    return Benchmark(root=root, rows=rows, manifest_sha256=sha256_bytes(manifest.read_bytes()))
