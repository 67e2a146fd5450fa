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

import errno
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fsmi_bench.benchmark.manifest import Benchmark, ManifestRow, load_benchmark
from fsmi_bench.errors import BadInputError, MethodError, MissingWeightsError
from fsmi_bench.io import (
    atomic_write_bytes,
    atomic_write_text,
    ensure_writable_dir,
    load_mask,
    load_rgb,
    path_inside,
)
from fsmi_bench.run.claim import (
    RunFolder,
    claim_run_folder,
    folder_lock,
    open_run_folder,
    release_claim,
    run_file_lock,
    start_record,
    utc_now,
)
from fsmi_bench.run.config import RunConfig, load_method_config  # noqa: F401 (load_method_config: re-exported)
from fsmi_bench.run.folder import Shard, failures_file, output_path
from fsmi_bench.run.method import (
    METHODS,
    EditRequest,
    Method,
    call_method,
    choose_method,
    close_quietly,
    instance_choice,
)
from fsmi_bench.run.output_writer import OutputWriter, VerifiedOutputs, Written, verified_outputs_path
from fsmi_bench.run.outputs import encode_output_png, is_valid_output, map_to_scene_size
from fsmi_bench.run.preflight import preflight_items, require_ready
from fsmi_bench.run.record import (
    EditKey,
    FailureLog,
    RunCost,
    RunCounts,
    RunRecord,
    SizeMapping,
    reset_memory_peaks,
)
from fsmi_bench.run.selection import (  # noqa: F401 (resolve_shard: re-exported)
    derive_seed,
    resolve_device,
    resolve_shard,
    select_rows,
)


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


def _instantiate(config: RunConfig, name: str) -> Method:
    method_class = METHODS.get(config.method)
    return call_method(name, "__init__()",
                       lambda: method_class(config=dict(config.method_config), device=config.device))


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

    An output that is already there and valid is kept (resume): known from ``verified`` (the record of
    outputs this run wrote or checked, ``output_writer.VerifiedOutputs``) or decoded in full. Outputs are
    encoded and written by an ``OutputWriter`` while the next edit is made. An exception from one edit is
    recorded in the failures file and the loop goes on, except ``MissingWeightsError``, which ends the run.
    """

    def __init__(self, benchmark: Benchmark, method: Method, failures: FailureLog, resized: dict,
                 verified: VerifiedOutputs | None = None):
        self.benchmark = benchmark
        self.method = method
        self.failures = failures
        self.resized: dict[str, list[int]] = dict(resized)
        self.verified = verified
        self.written = 0
        self.skipped = 0
        self.edit_seconds = 0.0  # the written outputs' time, for run.json's cost
        self._inputs: CaseInputs | None = None
        self._writer: OutputWriter | None = None

    def run(self, work: list[WorkItem], progress) -> None:
        """Every item, then close ``progress`` (a tqdm bar, updated per item) and save the failures file."""
        self._writer = writer = OutputWriter(encode_output_png, atomic_write_bytes)
        try:
            for item in work:
                self.do(item)
                progress.update(1)
        finally:
            self._writer = None
            try:
                self._take(self._wait(writer.close))
            finally:
                if self.verified is not None:
                    self.verified.save()
        progress.close()
        self.failures.save()

    def do(self, item: WorkItem) -> None:
        """One item (inside ``run``): skip it if its output is valid, else make it and queue it for writing."""
        if self._kept(item):
            self.skipped += 1
            self.failures.clear(item.key)
            return
        started = time.perf_counter()
        try:
            image, original_size = self._edit(item)
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
        except SystemExit as error:  # a method's sys.exit ends its edit, not fsmi
            self.failures.record(item.key, f"SystemExit: the method called sys.exit({error.code!r})")
            return
        edited = time.perf_counter() - started
        self._take(self._wait(lambda: self._writer.submit((item, edited), item.output, image, original_size)))

    def _kept(self, item: WorkItem) -> bool:
        if self.verified is not None and self.verified.knows(item.output):
            return True
        if item.output.is_file() and is_valid_output(item.output, item.row.width, item.row.height):
            if self.verified is not None:
                self.verified.add(item.output)
            return True
        return False

    def _wait(self, writer_call) -> list[Written]:
        """``writer_call()``; the time it takes to give outputs back (writes not hidden behind an edit)
        counts as edit time."""
        started = time.perf_counter()
        outcomes = writer_call()
        if outcomes:
            self.edit_seconds += time.perf_counter() - started
        return outcomes

    def _take(self, outcomes: list[Written]) -> None:
        """Record the outcome of written (or failed) outputs, in order; a full disk stops the run. An output
        written adds its edit's time to ``edit_seconds`` (with the writer's waits: the written outputs' time)."""
        for outcome in outcomes:
            item, edited = outcome.item
            if outcome.error is not None:
                error = outcome.error
                if isinstance(error, OSError) and error.errno in _FOLDER_FULL:
                    raise error
                self.failures.record(item.key, f"{type(error).__name__}: {error}")
                continue
            self.written += 1
            self.edit_seconds += edited
            if outcome.original_size is not None:
                self.resized[item.key.label] = list(outcome.original_size)
            else:
                self.resized.pop(item.key.label, None)
            self.failures.clear(item.key)
            if self.verified is not None:
                self.verified.add(item.output, outcome.sha256)

    def _edit(self, item: WorkItem) -> tuple[np.ndarray, tuple[int, int] | None]:
        """The method's edit mapped to the scene's size; the output's original (width, height) if resized."""
        if self._inputs is None or self._inputs.case_id != item.row.case_id:
            _clear_stale_temporaries(item.output.parent)
            self._inputs = CaseInputs.load(self.benchmark, item.row)
        request = edit_request(item, self._inputs, self.benchmark)
        return map_to_scene_size(self.method.edit(request), item.row.width, item.row.height)

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
    status, finished_at = "complete" if not counts.failed else "complete_with_failures", utc_now()
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
    # Every path made absolute before the method's code runs: a method may change the working folder.
    config = replace(config, bench=Path(config.bench).absolute(), out=Path(config.out).absolute())
    # An unknown name or a bad target fails at once, with "did you mean", before any folder is touched.
    choice = choose_method(config.method) if method is None else instance_choice(method)
    benchmark = load_benchmark(config.bench, verify=True)
    shard = resolve_shard(config.shard)
    device = resolve_device(config.device)
    work = select_work(benchmark, config, shard)
    root = ensure_writable_dir(config.out)
    # One writer per run file for the whole run (a second one of the same shard exits at once); the
    # folder lock is held only while the folder is compared and claimed, so that shards start side by side.
    with run_file_lock(root, shard):
        with folder_lock(root):
            folder = open_run_folder(config, benchmark, shard, choice)
            claim_run_folder(config, benchmark, folder, shard, device)
        counts = _run_claimed(config, benchmark, folder, shard, device, work, method)
    return RunSummary(out=folder.root, shard=shard, selected=counts.selected, written=counts.written,
                      skipped=counts.skipped, failed=counts.failed, elapsed_s=time.perf_counter() - started,
                      method=choice.name)


def _run_claimed(config: RunConfig, benchmark: Benchmark, folder: RunFolder, shard: Shard | None, device: str,
                 work: list[WorkItem], method: Method | None) -> RunCounts:
    """Set the method up, write the record, make the edits, write the final record (the locks are held).

    The method's own steps (``__init__``, ``preflight``, ``setup``, ``weights``, ``close``) that raise or call
    ``sys.exit`` end the run with one ``MethodError``; a ``close`` that fails after the final record says so,
    the outputs being complete. The working folder is restored after the method's code, whatever it did."""
    recorded = False
    name = folder.identity.method
    working_folder = os.getcwd()
    try:
        failures = FailureLog(failures_file(folder.root, shard))
        if method is None:
            method = _instantiate(replace(config, method_config=folder.identity.method_config, device=device), name)
        try:
            # seconds, before any model loads: a missing checkpoint or package fails here with one line
            require_ready(config.method, preflight_items(name, method))
            reset_memory_peaks()  # run.json's peak memory: this invocation's, model loading included
            call_method(name, "setup()", method.setup)
            record = start_record(config, benchmark, folder, shard, device, method)
            recorded = True
            verified = VerifiedOutputs.load(verified_outputs_path(folder.run_path), folder.root)
            edits = EditLoop(benchmark, method, failures, record.size_mapping.resized, verified)
            edits.run(work, _progress_bar(config, shard, len(work), name))
            counts = finish_record(folder.run_path, record, edits, work)
        except BaseException:
            close_quietly(method)
            raise
        try:
            call_method(name, "close()", method.close)
        except MethodError as error:
            raise MethodError(f"{error}; the run's outputs and {folder.run_path.name} are complete") from None
        return counts
    finally:
        os.chdir(working_folder)
        if not recorded:
            release_claim(folder)
