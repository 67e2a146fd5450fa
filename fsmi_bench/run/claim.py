"""The run folder as one invocation of ``fsmi run`` finds it and claims it: one folder holds one run (method,
config, seed, benchmark build); this invocation's run file is written at once, before the method is set up, so
that a second run finds the folder taken; then again once the method's weights are known.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import fsmi_bench
from fsmi_bench.benchmark.manifest import Benchmark
from fsmi_bench.errors import BadInputError, MethodError
from fsmi_bench.io import atomic_write_text, ensure_writable_dir, exclusive_lock
from fsmi_bench.provenance import git_commit, package_versions, weights_provenance
from fsmi_bench.run.config import RunConfig
from fsmi_bench.run.folder import (
    IMPORTED_PROVENANCE,
    OUTPUTS_DIR,
    Shard,
    invocations_of,
    read_run_file,
    run_file,
    run_files,
    run_identity,
)
from fsmi_bench.run.method import Method, MethodChoice, call_method
from fsmi_bench.run.record import Invocation, RunIdentity, RunRecord, RunSelection, SizeMapping

# The folder-wide lock, held while a run compares the folder's run files with its own and claims its file.
FOLDER_LOCK_NAME = ".fsmi-run.lock"
FOLDER_LOCK_WAIT_S = 120.0


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _json_normal(value):
    """The value as it reads back from JSON (tuples become lists), so configs compare equal after a restart."""
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except TypeError as error:
        raise BadInputError(f"method config must be JSON-serialisable: {error}") from None


@dataclass(frozen=True)
class RunFolder:
    """The output folder as this invocation found it.

    existing: the content of every run file already there (all of this run), by file name.
    previous: this process's own run file from an earlier invocation ({} if none), which is resumed.
    """

    root: Path
    identity: RunIdentity
    run_path: Path
    existing: dict[str, dict]
    previous: dict
    created_at: str = field(default_factory=lambda: utc_now())

    def previous_resized(self) -> dict[str, list[int]]:
        return dict((self.previous.get("size_mapping") or {}).get("resized", {}))


def run_file_lock(root: Path, shard: Shard | None):
    """The lock of one run file, held by its one writer for a whole run or import (a second one exits at once)."""
    name = run_file(root, shard).name
    return exclusive_lock(root / f".{name}.lock", f"{root / name}", wait_s=0)


def folder_lock(root: Path):
    """The folder-wide lock, held while a run or an import compares the folder's run files and claims its own."""
    return exclusive_lock(root / FOLDER_LOCK_NAME, f"run folder {root}", wait_s=FOLDER_LOCK_WAIT_S)


def holds_outputs(root: Path) -> bool:
    """True when ``root/outputs`` holds any file."""
    return any(path.is_file() for path in (root / OUTPUTS_DIR).rglob("*"))


def check_no_stray_outputs(root: Path, existing: dict) -> None:
    """A folder with outputs but no run file holds outputs of unknown origin: no run or import may adopt them."""
    if not existing and holds_outputs(root):
        raise BadInputError(f"{root} holds {OUTPUTS_DIR}/ but no run file, outputs of unknown origin; use another "
                            "--out folder, or delete that one to start again")


def _check_same_run(root: Path, identity: RunIdentity) -> dict[str, dict]:
    """Refuse a folder that holds another run; return the existing run files' contents by file name."""
    ours = identity.as_dict()
    existing = {}
    for _, path in run_files(root):
        info = read_run_file(path)
        if info.get("provenance") == IMPORTED_PROVENANCE:
            raise BadInputError(f"{root} holds outputs imported by `fsmi import-outputs` (method "
                                f"{info['method']!r}); use another --out folder")
        theirs = run_identity(info)
        if theirs != ours:
            differences = [f"{key}: {theirs.get(key)!r} there, {ours.get(key)!r} now"
                           for key in ours if theirs.get(key) != ours.get(key)]
            raise BadInputError(f"{root} already holds another run ({'; '.join(differences)}); "
                                "use another --out folder, or delete that one to start again")
        existing[path.name] = info
    return existing


def open_run_folder(config: RunConfig, benchmark: Benchmark, shard: Shard | None,
                    choice: MethodChoice | None = None) -> RunFolder:
    """Make the output folder (or check it is writable) and refuse it if it holds another run.
    ``choice``: the method's recorded name and target (default: ``config.method`` as a name)."""
    root = ensure_writable_dir(config.out)
    choice = choice or MethodChoice(config.method)
    identity = RunIdentity(method=choice.name, method_target=choice.target,
                           method_config=_json_normal(config.method_config),
                           seed=int(config.seed), manifest_sha256=benchmark.manifest_sha256)
    existing = _check_same_run(root, identity)
    check_no_stray_outputs(root, existing)
    path = run_file(root, shard)
    return RunFolder(root=root, identity=identity, run_path=path, existing=existing,
                     previous=existing.get(path.name, {}))


def _check_same_weights(root: Path, existing: dict[str, dict], weights: dict) -> None:
    for name, info in existing.items():
        theirs = {key: value.get("sha256") for key, value in (info.get("weights") or {}).items()}
        ours = {key: value["sha256"] for key, value in weights.items()}
        if info.get("weights") is not None and theirs != ours:
            raise BadInputError(f"{root / name} was made with other weights ({theirs} there, {ours} now); "
                                "use another --out folder")


def _record(config: RunConfig, benchmark: Benchmark, folder: RunFolder, shard: Shard | None, device: str,
            weights: dict | None) -> RunRecord:
    selection = RunSelection(mask_types=None if config.mask_types is None else list(config.mask_types),
                             kinds=list(config.kinds), limit=config.limit)
    this = Invocation(selection=selection, started_at=folder.created_at, fsmi_version=fsmi_bench.__version__)
    return RunRecord(
        identity=folder.identity, weights=weights, package_versions=package_versions(),
        git_commit=git_commit(), fsmi_version=fsmi_bench.__version__,
        benchmark_dir=str(Path(config.bench).resolve()), benchmark_version=benchmark.version,
        size_mapping=SizeMapping(resized=folder.previous_resized()), shard=shard, selection=selection,
        device=device, created_at=folder.previous.get("created_at", folder.created_at),
        invocations=(*_earlier_invocations(folder), this))


def _earlier_invocations(folder: RunFolder) -> list[dict]:
    # We hold this run file's lock, so an earlier invocation still "running" was killed or interrupted.
    return [{**item, "status": "interrupted"} if item.get("status") == "running" else item
            for item in invocations_of(folder.previous, folder.run_path)]


def claim_run_folder(config: RunConfig, benchmark: Benchmark, folder: RunFolder, shard: Shard | None,
                     device: str) -> None:
    """Write this run's file at once (weights not yet known), while the folder lock is held, so that a
    second run started before this one's method is set up finds the folder taken."""
    if not folder.previous:
        atomic_write_text(folder.run_path, _record(config, benchmark, folder, shard, device, None).to_json())


def release_claim(folder: RunFolder) -> None:
    """Undo ``claim_run_folder`` when the run ends before its first record (set-up failed, missing weights)."""
    if not folder.previous:
        try:
            info = read_run_file(folder.run_path)
        except BadInputError:
            return
        if info.get("weights") is None:
            folder.run_path.unlink(missing_ok=True)


def start_record(config: RunConfig, benchmark: Benchmark, folder: RunFolder, shard: Shard | None,
                 device: str, method: Method) -> RunRecord:
    """Check the set-up method's weights against the folder's and write run.json with status "running"."""
    name = folder.identity.method
    reported = call_method(name, "weights()", method.weights)
    if not isinstance(reported, dict) or not all(isinstance(key, str) and isinstance(value, (str, os.PathLike))
                                                 for key, value in reported.items()):
        raise MethodError(f"method {name}: weights() returned {type(reported).__name__}, not a mapping of weight "
                          "names to paths")
    weights = weights_provenance(reported)
    _check_same_weights(folder.root, folder.existing, weights)
    record = _record(config, benchmark, folder, shard, device, weights)
    atomic_write_text(folder.run_path, record.to_json())
    return record
