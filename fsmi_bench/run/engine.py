"""The run engine: runs one method over a benchmark, resumably, deterministically, in shards.

What it guarantees (the method only edits one case; everything else is here):
- Order: cases in sorted case-id order, each case's mask conditions in the manifest's order.
- Seeds: each edit's seed is ``derive_seed(run seed, case seed, mask type)``, so an output does not
  depend on which other cases ran, on shards, or on resuming.
- Resume: an output that exists and decodes as an RGB image of the scene's size is kept; anything else
  (missing, truncated, earlier failure) is done again. Outputs are written atomically, so a run killed at
  any moment and started again with the same command ends with the files of an uninterrupted run.
- One folder, one run: a folder holding a run with another method, config, seed or benchmark is refused.
- Failures: an exception from one edit is recorded in the failures file and the run goes on; missing
  weights and a full disk (or read-only folder) stop the run (every case would fail the same way).
- Sizes: an output of another size is resized to the scene's (width, height) (``SIZE_MAPPING_RULE``);
  run.json's ``size_mapping.resized`` lists the original size of each output that was resized.
- Shards: ``--shard i/n``, or one process per rank under ``accelerate launch`` (RANK / WORLD_SIZE), takes
  the cases whose position in the benchmark's sorted case list is i modulo n.
"""

from __future__ import annotations

import datetime
import difflib
import errno
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

import fsmi_bench
from fsmi_bench.benchmark.manifest import Benchmark, ManifestRow, load_benchmark
from fsmi_bench.errors import BadInputError, MissingWeightsError
from fsmi_bench.io import (
    atomic_write_bytes,
    atomic_write_text,
    ensure_writable_dir,
    exclusive_lock,
    load_mask,
    load_rgb,
    path_inside,
)
from fsmi_bench.provenance import git_commit, package_versions, weights_provenance
from fsmi_bench.run.folder import (
    Shard,
    failures_file,
    invocations_of,
    output_path,
    read_run_file,
    run_file,
    run_files,
    run_identity,
)
from fsmi_bench.run.method import METHODS, EditRequest, Method, MethodChoice, choose_method, instance_choice

# The folder-wide lock, held while a run compares the folder's run files with its own and claims its file.
FOLDER_LOCK_NAME = ".fsmi-run.lock"
FOLDER_LOCK_WAIT_S = 120.0
from fsmi_bench.run.preflight import require_ready
from fsmi_bench.run.record import (
    EditKey,
    FailureLog,
    Invocation,
    RunCost,
    RunCounts,
    RunIdentity,
    RunRecord,
    RunSelection,
    SizeMapping,
    reset_memory_peaks,
)
from fsmi_bench.schema import KINDS


@dataclass(frozen=True)
class RunConfig:
    """What ``fsmi run`` was asked to do.

    mask_types: the mask conditions to run (None = all in the manifest).
    kinds: "single" and/or "multi".
    limit: run only the first ``limit`` cases (sorted case ids, after the kinds filter), None = all.
    shard: this process's share; None = everything, or the accelerate rank when launched with several.
    method_config: the method's options (from ``--config`` and ``--weights``), recorded in run.json.
    """

    method: str
    bench: Path
    out: Path
    mask_types: tuple[str, ...] | None = None
    kinds: tuple[str, ...] = KINDS
    limit: int | None = None
    shard: Shard | None = None
    device: str = "cpu"
    seed: int = 0
    method_config: dict = field(default_factory=dict)
    progress: bool = True


@dataclass(frozen=True)
class RunSummary:
    """Counts of one invocation: written now, skipped (a valid output was there), failed; ``method``: the
    name the outputs are recorded under (a target's clean name, see ``method.choose_method``)."""

    out: Path
    shard: Shard | None
    selected: int
    written: int
    skipped: int
    failed: int
    elapsed_s: float
    method: str = ""


def derive_seed(run_seed: int, case_seed: int, mask_type: str) -> int:
    """The seed of one edit, in [0, 2**31): depends only on the run seed, the case seed and the mask type."""
    digest = hashlib.sha256(f"{run_seed}:{case_seed}:{mask_type}".encode("utf-8")).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def map_to_scene_size(output, width: int, height: int) -> tuple[np.ndarray, tuple[int, int] | None]:
    """A method's output as RGB uint8 (height, width, 3), and its original (width, height) if it was resized.

    Accepts RGB uint8 arrays, grayscale uint8 (repeated to RGB), RGBA uint8 (alpha dropped) and PIL
    images. Anything else (floats, wrong rank) is refused: silently rescaling floats would hide a bug.
    """
    from PIL import Image

    if isinstance(output, Image.Image):
        output = np.asarray(output.convert("RGB"))
    if not isinstance(output, np.ndarray):
        raise BadInputError(f"bad output: expected an RGB uint8 array, got {type(output).__name__}")
    if output.dtype != np.uint8:
        raise BadInputError(f"bad output: expected dtype uint8, got {output.dtype}")
    if output.ndim == 2:
        output = np.repeat(output[..., None], 3, axis=2)
    elif output.ndim == 3 and output.shape[2] == 4:
        output = output[..., :3]
    if output.ndim != 3 or output.shape[2] != 3 or output.shape[0] == 0 or output.shape[1] == 0:
        raise BadInputError(f"bad output: expected shape (H, W, 3), got {output.shape}")
    if output.shape[:2] == (height, width):
        return np.ascontiguousarray(output), None
    from fsmi_bench.benchmark.compose import resize_rgb

    original = (int(output.shape[1]), int(output.shape[0]))
    return resize_rgb(np.ascontiguousarray(output), width, height), original


# A method config is a handful of options; a larger file is not one (and would be slow to parse).
MAX_CONFIG_BYTES = 1 << 20


def load_method_config(path: str | os.PathLike) -> dict:
    """A method config file: a JSON (``.json``) or YAML (``.yaml``/``.yml``) mapping of option -> value.

    Anything else (a binary file, text that is not UTF-8, invalid or deeply nested JSON/YAML, YAML aliases,
    a list) is one ``BadInputError``, raised before any method is set up.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise BadInputError(f"config {path} is {path.stat().st_size} bytes; a method config is a small "
                                f"JSON or YAML mapping (at most {MAX_CONFIG_BYTES} bytes)")
        data = path.read_bytes()
    except OSError as error:
        raise BadInputError(f"cannot read config {path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInputError(f"config {path} is not UTF-8 text (byte {error.start}); give a JSON or YAML "
                            "mapping") from None
    if "\x00" in text:
        raise BadInputError(f"config {path} is a binary file; give a JSON or YAML mapping")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            config = yaml.load(text, Loader=_config_loader())  # safe, without aliases
        except yaml.YAMLError as error:
            raise BadInputError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
        except RecursionError:
            raise BadInputError(f"{path}: YAML nested too deeply") from None
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{path} is not valid JSON: {error.msg} (line {error.lineno})") from None
        except RecursionError:
            raise BadInputError(f"{path}: JSON nested too deeply") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise BadInputError(f"{path} must hold a mapping of option names to values, not {type(config).__name__}")
    bad_key = next((key for key in config if not isinstance(key, str)), None)
    if bad_key is not None:
        raise BadInputError(f"{path}: option names must be strings, not {bad_key!r}")
    return config


def _config_loader():
    import yaml

    class ConfigLoader(yaml.SafeLoader):
        """YAML's safe loader without aliases: ``*name`` can expand a small file into billions of values."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed in a method config, "
                                     f"line {event.start_mark.line + 1}")
            return super().compose_node(parent, index)

    return ConfigLoader


def encode_output_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 output.

    Encoding is most of the engine's own cost per edit. On 512 px photos, one fixed PNG filter ("average")
    with zlib's RLE strategy takes about a tenth of the time of ``fsmi_bench.io.save_png`` (adaptive
    filters, default deflate) for files about 2% larger; being lossless, it gives the scorer the same pixels.
    """
    import cv2

    parameters = [cv2.IMWRITE_PNG_COMPRESSION, 6, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                  cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_AVG]
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), parameters)
    if not ok:
        raise BadInputError(f"bad output: OpenCV could not encode an image of shape {image.shape} as PNG")
    return data.tobytes()


def resolve_shard(shard: Shard | None, environ=os.environ) -> Shard | None:
    """The explicit ``--shard``, else the process's rank under ``accelerate launch``/torchrun, else None."""
    world_size = int(environ.get("WORLD_SIZE", "1") or 1)
    if world_size > 1:
        if shard is not None:
            raise BadInputError("use either --shard i/n or `accelerate launch` with several processes, not both")
        return Shard(int(environ.get("RANK", "0") or 0), world_size)
    return shard


def resolve_device(device: str, environ=os.environ) -> str:
    """Under a multi-process launch, a bare "cuda" means this process's own GPU (LOCAL_RANK)."""
    if device == "cuda" and int(environ.get("WORLD_SIZE", "1") or 1) > 1 and "LOCAL_RANK" in environ:
        return f"cuda:{int(environ['LOCAL_RANK'])}"
    return device


def select_rows(benchmark: Benchmark, mask_types: tuple[str, ...] | None = None,
                kinds: tuple[str, ...] = KINDS, limit: int | None = None,
                shard: Shard | None = None) -> list[ManifestRow]:
    """The (case, mask condition) rows to run, in the engine's fixed order."""
    unknown_kinds = [kind for kind in kinds if kind not in KINDS]
    if unknown_kinds:
        raise BadInputError(f"unknown kind {unknown_kinds[0]!r} (known: {', '.join(KINDS)})")
    manifest_mask_order: dict[str, int] = {}
    for row in benchmark.rows:
        manifest_mask_order.setdefault(row.mask_type, len(manifest_mask_order))
    if mask_types is not None:
        for mask_type in mask_types:
            if mask_type not in manifest_mask_order:
                close = difflib.get_close_matches(mask_type, list(manifest_mask_order), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise BadInputError(f"mask type {mask_type!r} is not in this benchmark{hint} "
                                    f"(it has: {', '.join(manifest_mask_order)})")
    if limit is not None and limit < 1:
        raise BadInputError(f"--limit must be at least 1, got {limit}")
    # Positions are taken in the whole benchmark, so a shard's cases do not change with the filters.
    position = {case_id: index for index, case_id in enumerate(benchmark.case_ids())}
    kind_of = {row.case_id: row.kind for row in benchmark.rows}
    cases = [case_id for case_id in position if kind_of[case_id] in kinds]
    if limit is not None:
        cases = cases[:limit]
    if not cases:
        raise BadInputError(f"no case of kind {', '.join(kinds)} in {benchmark.root}")
    chosen = {case_id for case_id in cases if shard is None or shard.takes(position[case_id])}
    rows = [row for row in benchmark.rows
            if row.case_id in chosen and (mask_types is None or row.mask_type in mask_types)]
    rows.sort(key=lambda row: (position[row.case_id], manifest_mask_order[row.mask_type]))
    return rows


def is_valid_output(path: Path, width: int, height: int) -> bool:
    """True if ``path`` decodes completely as an RGB image of the given size."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.size != (width, height) or image.mode != "RGB":
                return False
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    return True


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _json_normal(value):
    """The value as it reads back from JSON (tuples become lists), so configs compare equal after a restart."""
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except TypeError as error:
        raise BadInputError(f"method config must be JSON-serialisable: {error}") from None


# --- the steps of run_method ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkItem:
    """One edit of this invocation: its manifest row (case and mask condition), the file its output goes
    to, and the seed the method is given (``derive_seed``)."""

    row: ManifestRow
    output: Path
    seed: int

    @property
    def key(self) -> EditKey:
        return EditKey(self.row.case_id, self.row.mask_type)


def select_work(benchmark: Benchmark, config: RunConfig, shard: Shard | None) -> list[WorkItem]:
    """The edits ``config`` selects (``select_rows``: mask types, kinds, limit, ``shard``), in the engine's
    fixed order, with their output paths under ``config.out`` and their seeds. Reads and writes nothing."""
    rows = select_rows(benchmark, config.mask_types, tuple(config.kinds), config.limit, shard)
    root = Path(config.out)
    # output_path accepts only safe names; path_inside also refuses a symlinked case folder that leads out.
    # The path given to path_inside is relative to the run folder: a relative --out must not appear twice.
    return [WorkItem(row=row, output=path_inside(root, output_path(Path(), row.case_id, row.mask_type)),
                     seed=derive_seed(config.seed, row.seed, row.mask_type)) for row in rows]


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
    created_at: str = field(default_factory=lambda: _now())

    def previous_resized(self) -> dict[str, list[int]]:
        return dict((self.previous.get("size_mapping") or {}).get("resized", {}))


def _check_same_run(root: Path, identity: RunIdentity) -> dict[str, dict]:
    """Refuse a folder that holds another run; return the existing run files' contents by file name."""
    ours = identity.as_dict()
    existing = {}
    for _, path in run_files(root):
        info = read_run_file(path)
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
    path = run_file(root, shard)
    return RunFolder(root=root, identity=identity, run_path=path, existing=existing,
                     previous=existing.get(path.name, {}))


def _instantiate(config: RunConfig) -> Method:
    method_class = METHODS.get(config.method)
    return method_class(config=dict(config.method_config), device=config.device)


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
    weights = weights_provenance(method.weights())
    _check_same_weights(folder.root, folder.existing, weights)
    record = _record(config, benchmark, folder, shard, device, weights)
    atomic_write_text(folder.run_path, record.to_json())
    return record


@dataclass(frozen=True, eq=False)
class CaseInputs:
    """The images shared by a case's mask conditions, loaded once per case."""

    case_id: str
    scene: np.ndarray
    subject: np.ndarray | None
    subject_mask: np.ndarray | None = None

    @classmethod
    def load(cls, benchmark: Benchmark, row: ManifestRow) -> CaseInputs:
        scene = load_rgb(benchmark.path(row.scene))
        subject = load_rgb(benchmark.path(row.subject)) if row.subject else None
        subject_mask = load_mask(benchmark.path(row.subject_mask)) if row.subject and row.subject_mask else None
        return cls(case_id=row.case_id, scene=scene, subject=subject, subject_mask=subject_mask)


def _clear_stale_temporaries(case_dir: Path) -> None:
    # A killed atomic write leaves ".<name>.<random>.tmp" beside the outputs; only this process writes
    # this case's folder (shards split by case), so they can be removed safely.
    for stale in case_dir.glob(".*.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass


def edit_request(item: WorkItem, inputs: CaseInputs, benchmark: Benchmark) -> EditRequest:
    """What the method gets for one work item: copies of the case's images (a method may write into
    them) and this mask condition's mask, which must be the scene's size."""
    row = item.row
    mask = load_mask(benchmark.path(row.mask))
    if mask.shape != inputs.scene.shape[:2]:
        raise BadInputError(f"mask {row.mask} is {mask.shape[::-1]}, scene is {inputs.scene.shape[1::-1]}")
    return EditRequest(
        scene=inputs.scene.copy(), subject=None if inputs.subject is None else inputs.subject.copy(), mask=mask,
        instruction=row.instruction, label=row.label, seed=item.seed, case_id=row.case_id,
        mask_type=row.mask_type, kind=row.kind, op=row.op, complexity=row.complexity,
        subject_mask=None if inputs.subject_mask is None else inputs.subject_mask.copy())


# A full disk, an exhausted quota or a folder turned read-only end the run, as missing weights do.
_FOLDER_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


class EditLoop:
    """Makes the work items' edits in order, keeping the failures file and the resized outputs current.

    An output that is already there and valid is kept (resume). An exception from one edit is recorded in
    the failures file and the loop goes on, except ``MissingWeightsError``, which ends the run.
    """

    def __init__(self, benchmark: Benchmark, method: Method, failures: FailureLog, resized: dict):
        self.benchmark = benchmark
        self.method = method
        self.failures = failures
        self.resized: dict[str, list[int]] = dict(resized)
        self.written = 0
        self.skipped = 0
        self.edit_seconds = 0.0  # the written outputs' time, for run.json's cost
        self._inputs: CaseInputs | None = None

    def run(self, work: list[WorkItem], progress) -> None:
        """Every item, then close ``progress`` (a tqdm bar, updated per item) and save the failures file."""
        for item in work:
            self.do(item)
            progress.update(1)
        progress.close()
        self.failures.save()

    def do(self, item: WorkItem) -> None:
        """One item: skip it if its output is valid, else make it and record how it went."""
        if item.output.is_file() and is_valid_output(item.output, item.row.width, item.row.height):
            self.skipped += 1
            self.failures.clear(item.key)
            return
        started = time.perf_counter()
        try:
            original_size = self._make_output(item)
        except MissingWeightsError:
            raise
        except OSError as error:
            if error.errno in _FOLDER_FULL:  # every later edit would fail the same way: stop, keep what is done
                raise
            self.failures.record(item.key, f"{type(error).__name__}: {error}")
            return
        except Exception as error:  # one edit's failure must not end the run
            self.failures.record(item.key, f"{type(error).__name__}: {error}")
            return
        self.written += 1
        self.edit_seconds += time.perf_counter() - started
        if original_size is not None:
            self.resized[item.key.label] = list(original_size)
        else:
            self.resized.pop(item.key.label, None)
        self.failures.clear(item.key)

    def _make_output(self, item: WorkItem) -> tuple[int, int] | None:
        """Edit, map to the scene's size, write atomically; the output's original (width, height) if resized."""
        if self._inputs is None or self._inputs.case_id != item.row.case_id:
            _clear_stale_temporaries(item.output.parent)
            self._inputs = CaseInputs.load(self.benchmark, item.row)
        request = edit_request(item, self._inputs, self.benchmark)
        image, original_size = map_to_scene_size(self.method.edit(request), item.row.width, item.row.height)
        atomic_write_bytes(item.output, encode_output_png(image))
        return original_size

    def counts(self, work: list[WorkItem]) -> RunCounts:
        return RunCounts(selected=len(work), written=self.written, skipped=self.skipped,
                         failed=self.failures.count(item.key for item in work))


def _progress_bar(config: RunConfig, shard: Shard | None, total: int, name: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=name + (f" shard {shard.label}" if shard else ""),
                unit="edit", file=sys.stderr, disable=not config.progress, dynamic_ncols=True)


def finish_record(path: Path, record: RunRecord, edits: EditLoop, work: list[WorkItem]) -> RunCounts:
    """Write run.json's final version: status, finish time, counts and the resized outputs after the edits."""
    counts = edits.counts(work)
    status, finished_at = "complete" if not counts.failed else "complete_with_failures", _now()
    this = replace(record.invocations[-1], status=status, finished_at=finished_at, counts=counts,
                   cost=RunCost.measure(edits.written, edits.edit_seconds))
    final = replace(record, status=status, finished_at=finished_at, counts=counts,
                    size_mapping=SizeMapping(resized=edits.resized), invocations=(*record.invocations[:-1], this))
    atomic_write_text(path, final.to_json())
    return counts


def run_method(config: RunConfig, method: Method | None = None) -> RunSummary:
    """Run ``config.method`` (a name or target) or the given ``method`` object over the benchmark.

    A method given by target or as an object is recorded under its clean name (``method.method_name``)
    with its target beside it. Raises ``FsmiError`` subclasses for problems the user must fix; per-edit
    exceptions are recorded in the failures file instead."""
    started = time.perf_counter()
    # An unknown name or a bad target fails at once, with "did you mean", before any folder is touched.
    choice = choose_method(config.method) if method is None else instance_choice(method)
    benchmark = load_benchmark(config.bench, verify=True)
    shard = resolve_shard(config.shard)
    device = resolve_device(config.device)
    work = select_work(benchmark, config, shard)
    root = ensure_writable_dir(config.out)
    # One writer per run file for the whole run (a second one of the same shard exits at once); the
    # folder lock is held only while the folder is compared and claimed, so that shards start side by side.
    run_name = run_file(root, shard).name
    with exclusive_lock(root / f".{run_name}.lock", f"{root / run_name}", wait_s=0):
        with exclusive_lock(root / FOLDER_LOCK_NAME, f"run folder {root}", wait_s=FOLDER_LOCK_WAIT_S):
            folder = open_run_folder(config, benchmark, shard, choice)
            claim_run_folder(config, benchmark, folder, shard, device)
        counts = _run_claimed(config, benchmark, folder, shard, device, work, method)
    return RunSummary(out=folder.root, shard=shard, selected=counts.selected, written=counts.written,
                      skipped=counts.skipped, failed=counts.failed, elapsed_s=time.perf_counter() - started,
                      method=choice.name)


def _run_claimed(config: RunConfig, benchmark: Benchmark, folder: RunFolder, shard: Shard | None, device: str,
                 work: list[WorkItem], method: Method | None) -> RunCounts:
    """Set the method up, write the record, make the edits, write the final record (the locks are held)."""
    recorded = False
    try:
        failures = FailureLog(failures_file(folder.root, shard))
        if method is None:
            method = _instantiate(replace(config, method_config=folder.identity.method_config, device=device))
        try:
            # seconds, before any model loads: a missing checkpoint or package fails here with one line
            require_ready(config.method, method.preflight())
            reset_memory_peaks()  # run.json's peak memory: this invocation's, model loading included
            method.setup()
            record = start_record(config, benchmark, folder, shard, device, method)
            recorded = True
            edits = EditLoop(benchmark, method, failures, record.size_mapping.resized)
            edits.run(work, _progress_bar(config, shard, len(work), folder.identity.method))
            return finish_record(folder.run_path, record, edits, work)
        finally:
            method.close()
    finally:
        if not recorded:
            release_claim(folder)
