"""The run folder written by ``fsmi run`` and read by ``fsmi score``.

Layout (see the shared contracts):
- ``RUNDIR/outputs/<case_id>/<mask_type>.png``: RGB uint8, the scene's size;
- an unsharded run writes ``RUNDIR/run.json`` and ``RUNDIR/failures.jsonl`` (rows {case_id, mask_type, error});
- shard i of n (``--shard i/n`` or one process of ``accelerate launch``) writes into the same ``outputs/``
  (shards split by case, so their files are disjoint) and its own ``run.shard-<i>-of-<n>.json`` and
  ``failures.shard-<i>-of-<n>.jsonl``.

``load_run`` merges whatever run files a folder holds into one ``RunInfo``. Stdlib only at import.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from fsmi_bench import schema
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import check_path_part, read_jsonl

OUTPUTS_DIR = "outputs"
RUN_FILE = "run.json"
FAILURES_FILE = "failures.jsonl"
# run.json's ``provenance`` in a folder that `fsmi import-outputs` owns (absent in one that `fsmi run` owns).
IMPORTED_PROVENANCE = "imported"
_SHARD_RUN_FILE = re.compile(r"^run\.shard-(\d+)-of-(\d+)\.json$")

METHOD_NAME_PATTERN = re.compile(schema.METHOD_NAME_PATTERN)

# The keys that make two runs "the same run": a folder may only hold outputs of one of them.
# method_target: where a method given as package.module:Class or file.py:Class came from (None otherwise).
IDENTITY_KEYS = ("method", "method_target", "method_config", "seed", "manifest_sha256")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count): the cases whose position in the benchmark's
    sorted case list is ``index`` modulo ``count``."""

    index: int
    count: int

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise BadInputError(f"shard {self.index}/{self.count} is out of range: use i/n with 0 <= i < n")

    @property
    def label(self) -> str:
        return f"{self.index}-of-{self.count}"

    def takes(self, case_position: int) -> bool:
        return case_position % self.count == self.index


def parse_shard(text: str) -> Shard:
    """``"i/n"`` -> ``Shard(i, n)``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise BadInputError(f"--shard {text!r}: expected i/n, for example 0/4")
    return Shard(int(match.group(1)), int(match.group(2)))


def run_file(root: Path, shard: Shard | None) -> Path:
    return root / (RUN_FILE if shard is None else f"run.shard-{shard.label}.json")


def failures_file(root: Path, shard: Shard | None) -> Path:
    return root / (FAILURES_FILE if shard is None else f"failures.shard-{shard.label}.jsonl")


def output_path(root: Path, case_id: str, mask_type: str) -> Path:
    """``root/outputs/<case_id>/<mask_type>.png``; both names must be safe path parts."""
    return root / OUTPUTS_DIR / check_path_part(case_id, "case_id") / f"{check_path_part(mask_type, 'mask_type')}.png"


def run_identity(info: dict) -> dict:
    """The part of run.json that must agree between resumed runs and between shards."""
    return {key: info.get(key) for key in IDENTITY_KEYS}


def run_files(root: Path) -> list[tuple[Shard | None, Path]]:
    """Every run.json / run.shard-*.json in ``root``, the unsharded one first, shards in order."""
    found: list[tuple[Shard | None, Path]] = []
    if (root / RUN_FILE).is_file():
        found.append((None, root / RUN_FILE))
    shards = []
    for path in root.glob("run.shard-*-of-*.json"):
        match = _SHARD_RUN_FILE.match(path.name)
        if match:
            shards.append((Shard(int(match.group(1)), int(match.group(2))), path))
    shards.sort(key=lambda item: (item[0].count, item[0].index))
    return found + shards


def read_run_file(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"cannot read {path}: {error}") from None
    if not isinstance(info, dict) or "method" not in info:
        raise BadInputError(f"{path} is not a run file (no 'method' key)")
    if not isinstance(info["method"], str) or not METHOD_NAME_PATTERN.fullmatch(info["method"]):
        raise BadInputError(f"{path}: method {str(info['method'])[:80]!r} is not a method name")
    return info


def invocations_of(info: dict, path: Path | str = "run.json") -> list[dict]:
    """Every invocation a run file records, oldest first.

    A run.json written before invocations were recorded (no ``invocations`` key) counts as one invocation
    made of its top-level ``selection``, times, status and counts, so old run folders stay readable.
    """
    if "invocations" not in info:
        if info.get("selection") is None:
            return []
        return [{"selection": info.get("selection"), "started_at": info.get("created_at"),
                 "fsmi_version": info.get("fsmi_version"), "status": info.get("status"),
                 "finished_at": info.get("finished_at"), "counts": info.get("counts")}]
    invocations = info["invocations"]
    if not isinstance(invocations, list) or not all(isinstance(item, dict) and isinstance(item.get("selection"), dict)
                                                    for item in invocations):
        raise BadInputError(f"{path}: 'invocations' must be a list of records with a 'selection' each")
    return invocations


@dataclass(frozen=True)
class RunInfo:
    """A run folder, shards merged.

    info: run.json's content (for a sharded run: the first shard's, with ``shards`` listing every shard
    file's content and ``size_mapping.resized`` merged over all of them); ``invocations`` lists every
    invocation of every run file, oldest first (see ``invocations_of``).
    failures: (case_id, mask_type) -> error message, for outputs that do not exist; failure_statuses: the
    status the scorer gives each of them where the failures file says (an import's ``missing_output`` and
    ``bad_output``; else ``failed_case``).
    """

    root: Path
    method: str
    info: dict
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    failure_statuses: dict[tuple[str, str], str] = field(default_factory=dict)

    def failure_status(self, key: tuple[str, str]) -> str:
        return self.failure_statuses.get(key, "failed_case")

    def output_path(self, case_id: str, mask_type: str) -> Path:
        return output_path(self.root, case_id, mask_type)


def load_run(root: str | Path) -> RunInfo:
    """Read a run folder written by ``fsmi run`` (one process, ``--shard`` parts or ``accelerate launch``)."""
    root = Path(root)
    found = run_files(root)
    if not found:
        raise BadInputError(f"{root} is not a run folder (no {RUN_FILE} or run.shard-*.json); "
                            "make one with `fsmi run`")
    infos = [(shard, read_run_file(path)) for shard, path in found]
    first_path, first = found[0][1], infos[0][1]
    for (shard, info), (_, path) in zip(infos[1:], found[1:]):
        if run_identity(info) != run_identity(first):
            raise BadInputError(f"{path} belongs to another run than {first_path} "
                                f"(method, config, seed or benchmark differ); keep one run per folder")
    merged = dict(first)
    # every invocation of every shard, oldest first: the union of what was asked of this folder
    invocations = [item for (_, info), (_, path) in zip(infos, found) for item in invocations_of(info, path)]
    merged["invocations"] = sorted(invocations, key=lambda item: str(item.get("started_at") or ""))
    if len(infos) > 1 or infos[0][0] is not None:
        merged["shards"] = [info for _, info in infos]
        resized: dict = {}
        for _, info in infos:
            resized.update((info.get("size_mapping") or {}).get("resized", {}))
        merged["size_mapping"] = {**(first.get("size_mapping") or {}), "resized": resized}
    failures: dict[tuple[str, str], str] = {}
    statuses: dict[tuple[str, str], str] = {}
    for shard, _ in infos:
        path = failures_file(root, shard)
        if not path.is_file():
            continue
        for number, row in enumerate(read_jsonl(path), start=1):
            if not (isinstance(row, dict) and isinstance(row.get("error"), str)):
                raise BadInputError(f"{path}: row {number} is not a failure record (case_id, mask_type, error)")
            key = (row.get("case_id"), row.get("mask_type"))
            # A failure followed by a successful retry (by another shard layout) leaves an output behind.
            if not output_path(root, *key).is_file():
                failures[key] = row["error"]
                if row.get("status") in ("missing_output", "bad_output"):
                    statuses[key] = row["status"]
    return RunInfo(root=root, method=first["method"], info=merged, failures=failures, failure_statuses=statuses)
