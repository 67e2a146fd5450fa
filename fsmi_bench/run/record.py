"""The records of a run folder that the engine writes: run.json (``RunRecord``) and the failures file.

Every record is a frozen dataclass with named fields; ``RunRecord.to_json`` is run.json's text, byte for
byte (keys sorted at every level, two-space indent), so that a resumed run can compare what it finds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import read_jsonl, write_jsonl
from fsmi_bench.run.folder import IDENTITY_KEYS, Shard

SEED_RULE = "int(sha256(f'{run_seed}:{case_seed}:{mask_type}')[:8], 16) & 0x7fffffff"
SIZE_MAPPING_RULE = ("outputs whose size differs from the scene's are resized to the scene's (width, height) "
                     "with PIL bicubic resampling, the whole image stretched (aspect ratio not kept), since "
                     "methods work on a resized copy of the whole scene")
OUTPUT_PNG_ENCODING = ("OpenCV PNG: the 'average' filter on every row, zlib RLE strategy (lossless; byte-stable for "
                       "a given OpenCV)")


@dataclass(frozen=True, order=True)
class EditKey:
    """One (case, mask condition): the key of an output, of a failure and of a resized-output record."""

    case_id: str
    mask_type: str

    @property
    def label(self) -> str:
        """``case_id/mask_type``, the key of run.json's ``size_mapping.resized``."""
        return f"{self.case_id}/{self.mask_type}"


@dataclass(frozen=True)
class RunIdentity:
    """What makes two runs the same run (``folder.IDENTITY_KEYS``): a folder holds the outputs of one only."""

    method: str
    method_config: dict
    seed: int
    manifest_sha256: str
    method_target: str | None = None  # package.module:Class or /path/file.py:Class of a method given so

    def as_dict(self) -> dict:
        """The identity as run.json holds it, keys in ``IDENTITY_KEYS`` order."""
        return {key: getattr(self, key) for key in IDENTITY_KEYS}


@dataclass(frozen=True)
class SizeMapping:
    """run.json's ``size_mapping``: the rule, and the original [width, height] of each resized output."""

    resized: dict[str, list[int]]
    rule: str = SIZE_MAPPING_RULE


@dataclass(frozen=True)
class RunSelection:
    """run.json's ``selection``: the options that chose the work (None = every mask type / every case)."""

    mask_types: list[str] | None
    kinds: list[str]
    limit: int | None


@dataclass(frozen=True)
class RunCounts:
    """run.json's ``counts`` of a finished invocation: ``failed`` counts the selected edits only."""

    selected: int
    written: int
    skipped: int
    failed: int


@dataclass(frozen=True)
class RunCost:
    """run.json's ``cost`` of a finished invocation: what its edits took, for reports to compare methods.

    edit_seconds: wall time of the ``edits`` outputs written (the method's edit, the size mapping and the
    PNG write; model loading and skipped outputs not included). peak_rss_bytes: the peak resident memory of
    the ``fsmi run`` process since ``reset_memory_peaks`` (the invocation's start, model loading included)
    where the system lets a peak be reset (Linux), else since the process started (``peak_rss_since``); a
    method that runs in a worker process of its own is not in it. peak_gpu_bytes: torch's peak of
    allocated CUDA memory in this process since the same moment, None when CUDA was not used.
    """

    edits: int
    edit_seconds: float
    peak_rss_bytes: int
    peak_gpu_bytes: int | None = None
    peak_rss_since: str = "invocation"  # or "process"

    @classmethod
    def measure(cls, edits: int, edit_seconds: float) -> "RunCost":
        import resource
        import sys

        since, peak_rss = "invocation", _peak_rss_since_reset()
        if peak_rss is None:
            since = "process"
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
            peak_rss = int(peak if sys.platform == "darwin" else peak * 1024)
        torch = sys.modules.get("torch")  # only a method that imported torch can have used CUDA
        gpu = None
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            gpu = int(torch.cuda.max_memory_allocated())
        return cls(edits, round(edit_seconds, 6), peak_rss, gpu, since)


_PEAK_WAS_RESET = False


def reset_memory_peaks() -> None:
    """Start the peaks ``RunCost.measure`` reads from the current usage, so that an invocation's peak is its
    own and not that of earlier work in the same process (a quickstart's other methods, say)."""
    import sys

    global _PEAK_WAS_RESET
    try:  # Linux: "5" resets the peak resident set size to the current one (proc(5), clear_refs)
        Path("/proc/self/clear_refs").write_text("5")
        _PEAK_WAS_RESET = True
    except OSError:
        _PEAK_WAS_RESET = False
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def _peak_rss_since_reset() -> int | None:
    """VmHWM of /proc/self/status in bytes, when ``reset_memory_peaks`` could reset it."""
    if not _PEAK_WAS_RESET:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass(frozen=True)
class Invocation:
    """One ``fsmi run`` into the folder: its selection, when it ran, with which fsmi, and how it ended.

    run.json's ``invocations`` lists every one, oldest first, so that a second run with other ``--kinds``,
    ``--limit`` or ``--mask-types`` adds its selection instead of replacing the first one's.
    """

    selection: RunSelection
    started_at: str
    fsmi_version: str
    status: str = "running"
    finished_at: str | None = None
    counts: RunCounts | None = None
    cost: RunCost | None = None


@dataclass(frozen=True)
class RunRecord:
    """The content of run.json (or of this shard's run file). It is written with status "running" before
    the first edit, and again at the end with the final status, ``finished_at`` and ``counts``; earlier
    invocations into the same folder stay in ``invocations``."""

    identity: RunIdentity
    weights: dict | None  # None only in the first record, written before the method is set up
    package_versions: dict
    git_commit: str | None
    fsmi_version: str
    benchmark_dir: str
    benchmark_version: str
    size_mapping: SizeMapping
    shard: Shard | None
    selection: RunSelection
    device: str
    created_at: str
    status: str = "running"
    finished_at: str | None = None
    counts: RunCounts | None = None
    seed_rule: str = SEED_RULE
    output_encoding: str = OUTPUT_PNG_ENCODING
    # every invocation's selection (``Invocation``, or its mapping as read back from an earlier run.json);
    # ``selection``, ``status`` and ``counts`` above are those of the latest
    invocations: tuple = ()

    def as_dict(self) -> dict:
        """run.json's mapping: the identity's keys at the top level; no ``finished_at``/``counts`` until set,
        no ``method_target`` for a method given by name."""
        record = asdict(self)
        record.update(record.pop("identity"))
        for key in ("finished_at", "counts", "method_target"):
            if record[key] is None:
                del record[key]
        return record

    def to_json(self) -> str:
        """run.json's text (keys sorted at every level, two-space indent)."""
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)


# What a failure row may say the scorer should call it (``status``); a row without one is a failed edit.
FAILURE_STATUSES = ("failed_case", "missing_output", "bad_output")


class FailureLog:
    """The failures file of this process: the error of each (case, mask condition) whose last try failed.

    Rewritten at every change, so a run killed at any moment leaves it current. Rows of edits outside this
    invocation's selection are kept; an edit that succeeds (or is found done) loses its row. A row may carry a
    ``status`` (``FAILURE_STATUSES``): imported outputs that were missing or unreadable are ``missing_output`` or
    ``bad_output``, not failed edits.
    """

    def __init__(self, path: Path):
        self.path = path
        self.errors: dict[EditKey, str] = {}
        self.statuses: dict[EditKey, str] = {}
        if path.is_file():
            for number, row in enumerate(read_jsonl(path), start=1):
                if not (isinstance(row, dict) and isinstance(row.get("case_id"), str)
                        and isinstance(row.get("mask_type"), str) and isinstance(row.get("error"), str)
                        and row.get("status", "failed_case") in FAILURE_STATUSES):
                    raise BadInputError(f"{path}: row {number} is not a failure record (case_id, mask_type, error)")
                key = EditKey(row["case_id"], row["mask_type"])
                self.errors[key] = row["error"]
                if "status" in row:
                    self.statuses[key] = row["status"]

    def record(self, key: EditKey, error: str, status: str | None = None) -> None:
        self.errors[key] = error
        if status is None:
            self.statuses.pop(key, None)
        else:
            self.statuses[key] = status
        self.save()

    def clear(self, key: EditKey) -> None:
        self.statuses.pop(key, None)
        if self.errors.pop(key, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the file, rows sorted by (case_id, mask_type)."""
        write_jsonl(self.path, [{"case_id": key.case_id, "mask_type": key.mask_type, "error": error,
                                 **({"status": self.statuses[key]} if key in self.statuses else {})}
                                for key, error in sorted(self.errors.items())])

    def count(self, keys) -> int:
        return sum(1 for key in keys if key in self.errors)
