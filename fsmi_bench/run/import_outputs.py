"""Outputs made elsewhere -> a run folder that ``fsmi score`` and ``fsmi report`` read like any other.

The layouts accepted (``--from``) and how each image is checked are in ``run.import_sources``: a folder of
``<case_id>/<mask_type>.png`` or a ``case_id,mask_type,path`` CSV; every image decoded under the pixel limit,
upright by its EXIF orientation, grayscale, palette and RGBA made RGB, another size than the scene's resized by
the run engine's rule (``size_mapping.resized``); outputs re-encoded the way the engine writes them.

A selected (case, mask condition) without a file is a row of the failures file with status ``missing_output``,
one whose file cannot be used a row with status ``bad_output`` (the scorer reports them so); files that name no
case are listed (``unmatched``).

The folder is an import's as a run folder is a run's, under the same locks (``run.claim``): an import refuses
a folder that `fsmi run` or an import of another name owns, and `fsmi run` refuses an import's folder. run.json
is claimed (status "running") before any output changes, and holds the usual run record plus ``provenance:
"imported"`` and ``imported``: the source, its layout, the sha256 of every file read, and what was missing,
unreadable or unmatched. Importing again replaces the earlier import: outputs whose source file is unchanged
(same sha256) are kept, every other earlier output is removed before a new one is written, so the folder never
mixes two imports; an import that was interrupted is resumed by running it again.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import fsmi_bench
from fsmi_bench.benchmark.manifest import Benchmark, ManifestRow, load_benchmark
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_bytes, atomic_write_text, ensure_writable_dir, sha256_file
from fsmi_bench.provenance import git_commit, package_versions
from fsmi_bench.run.claim import check_no_stray_outputs, folder_lock, run_file_lock, utc_now
from fsmi_bench.run.folder import (
    IMPORTED_PROVENANCE,
    OUTPUTS_DIR,
    failures_file,
    invocations_of,
    output_path,
    read_run_file,
    run_file,
    run_files,
)
from fsmi_bench.run.import_sources import ImportedFile, check_image, find_folder_files, read_mapping_csv
from fsmi_bench.run.method import check_method_name
from fsmi_bench.run.outputs import encode_output_png, is_valid_output
from fsmi_bench.run.record import (
    EditKey,
    FailureLog,
    Invocation,
    RunCounts,
    RunIdentity,
    RunRecord,
    RunSelection,
    SizeMapping,
)
from fsmi_bench.run.selection import select_rows
from fsmi_bench.schema import KINDS

IMPORTED = IMPORTED_PROVENANCE
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
class ImportSummary:
    """Counts of one import: ``missing`` and ``invalid`` together are the pairs without a usable output;
    ``kept``: outputs of an earlier import whose source file is unchanged; ``unmatched_names``: the first
    files (or CSV rows) that named no case."""

    out: Path
    expected: int
    imported: int
    resized: int
    missing: int
    invalid: int
    unmatched: int
    elapsed_s: float
    kept: int = 0
    unmatched_names: tuple[str, ...] = ()

    def line(self, method_name: str) -> str:
        kept = f"{self.kept} unchanged since the last import, " if self.kept else ""
        return (f"{method_name}: {self.imported} of {self.expected} outputs imported ({kept}{self.resized} resized), "
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


@dataclass(frozen=True)
class _Item:
    """One selected (case, mask condition): its row, where its output goes, its source file (None when none
    was found) and that file's sha256."""

    row: ManifestRow
    target: Path
    path: Path | None
    sha256: str | None

    @property
    def key(self) -> EditKey:
        return EditKey(self.row.case_id, self.row.mask_type)


def _source_and_layout(config: ImportConfig) -> tuple[Path, str, Path]:
    """The source (absolute), its layout ("csv" or "folder") and the out folder (absolute); refuses a source
    that is missing, of another kind, or inside --out (whose outputs the import replaces)."""
    try:
        source = Path(config.source).expanduser().absolute()
    except RuntimeError as error:  # ~nosuchuser
        raise BadInputError(f"--from {config.source}: {error}") from None
    if not source.exists():
        raise BadInputError(f"--from {config.source}: no such folder or file")
    if not source.is_file() and not source.is_dir():
        raise BadInputError(f"--from {source}: neither a folder nor a file (a device or a pipe?)")
    layout = "csv" if source.is_file() else "folder"
    if layout == "csv" and source.suffix.lower() != ".csv":
        raise BadInputError(f"--from {source}: give a folder of <case_id>/<mask_type>.png or a .csv mapping file")
    out = Path(config.out).absolute()
    if source.resolve().is_relative_to(out.resolve()):
        raise BadInputError(f"--from {source} lies inside --out {out}, whose outputs an import replaces; copy them "
                            "elsewhere first")
    return source, layout, out


def _check_out_folder(root: Path, identity: RunIdentity) -> dict:
    """The folder's run.json if it holds an earlier import of these outputs' name on the same benchmark build
    (to be replaced), else {}; refuses a folder that `fsmi run` or another import owns."""
    existing = run_files(root)
    previous: dict = {}
    for shard, path in existing:
        info = read_run_file(path)
        if info.get("provenance") != IMPORTED:
            raise BadInputError(f"{root} holds a run of {info.get('method')!r} made by `fsmi run` ({path.name}); "
                                "use another --out folder")
        if shard is not None or info.get("method") != identity.method or \
                info.get("manifest_sha256") != identity.manifest_sha256:
            raise BadInputError(f"{root} already holds another import ({path.name}: method {info.get('method')!r}"
                                f"{'' if info.get('method') != identity.method else ', another benchmark build'}); "
                                "use another --out folder")
        previous = info
    check_no_stray_outputs(root, existing)
    return previous


def _earlier_files(previous: dict) -> dict[str, ImportedFile]:
    files = {}
    for label, entry in ((previous.get("imported") or {}).get("files") or {}).items():
        try:
            files[label] = ImportedFile(**entry)
        except TypeError:  # an entry written by hand: its output is made again
            continue
    return files


def _plan(rows: list[ManifestRow], found: dict[EditKey, Path], root: Path,
          earlier: dict[str, ImportedFile]) -> tuple[list[_Item], dict[str, ImportedFile]]:
    """Every selected item with its source's sha256, and the earlier import's records of the outputs kept (their
    source unchanged, their output valid)."""
    items, kept = [], {}
    for row in rows:
        key = EditKey(row.case_id, row.mask_type)
        path = found.get(key)
        digest = None
        if path is not None and path.is_file():
            try:
                digest = sha256_file(path)
            except OSError:
                digest = None  # unreadable: tried, and recorded, as the import goes
        item = _Item(row, output_path(root, row.case_id, row.mask_type), path, digest)
        previous = earlier.get(key.label)
        if digest and previous and previous.sha256 == digest and item.target.is_file() and \
                is_valid_output(item.target, row.width, row.height):
            kept[key.label] = ImportedFile(**{**asdict(previous), "path": str(path)})
        items.append(item)
    return items, kept


def _remove_outputs_outside(root: Path, kept: set[EditKey]) -> None:
    """Delete every output but ``kept``, so that the folder never holds outputs of two imports."""
    outputs = root / OUTPUTS_DIR
    if not outputs.is_dir():
        return
    for path in sorted(outputs.rglob("*"), reverse=True):
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif len(path.relative_to(outputs).parts) != 2 or path.suffix != ".png" or \
                EditKey(path.parent.name, path.stem) not in kept:
            path.unlink()


def _write_record(root: Path, config: ImportConfig, identity: RunIdentity, benchmark: Benchmark, previous: dict,
                  started_at: str, provenance: ImportProvenance, counts: RunCounts | None) -> None:
    """run.json: "running" while ``counts`` is None, else the final status; earlier imports' invocations kept."""
    selection = RunSelection(mask_types=None if config.mask_types is None else list(config.mask_types),
                             kinds=list(config.kinds), limit=None)
    status = "running" if counts is None else "complete" if not counts.failed else "complete_with_failures"
    finished_at = None if counts is None else utc_now()
    # We hold the run file's lock: an earlier import still "running" was killed or interrupted.
    earlier = [{**item, "status": "interrupted"} if item.get("status") == "running" else item
               for item in invocations_of(previous, "run.json")]
    this = Invocation(selection=selection, started_at=started_at, fsmi_version=fsmi_bench.__version__,
                      status=status, finished_at=finished_at, counts=counts)
    resized = {label: record.original_size for label, record in provenance.files.items() if record.original_size}
    record = RunRecord(
        identity=identity, weights={}, package_versions=package_versions(), git_commit=git_commit(),
        fsmi_version=fsmi_bench.__version__, benchmark_dir=str(Path(config.bench).resolve()),
        benchmark_version=benchmark.version, size_mapping=SizeMapping(resized=resized), shard=None,
        selection=selection, device="none", created_at=previous.get("created_at") or started_at, status=status,
        finished_at=finished_at, counts=counts, invocations=(*earlier, this))
    atomic_write_text(run_file(root, None), run_json(record, provenance))


def _progress(total: int, enabled: bool, name: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"import {name}", unit="image", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True)


def import_outputs(config: ImportConfig) -> ImportSummary:
    """Check and copy outputs made elsewhere into a run folder at ``config.out``; see the module docstring."""
    started = time.perf_counter()
    name = check_method_name(config.method_name.strip() if isinstance(config.method_name, str) else
                             config.method_name, "--method-name")
    source, layout, out = _source_and_layout(config)
    benchmark = load_benchmark(config.bench, verify=True)
    rows: list[ManifestRow] = select_rows(benchmark, config.mask_types, tuple(config.kinds))
    found, unmatched = (read_mapping_csv if layout == "csv" else find_folder_files)(source, benchmark)
    for key, path in found.items():
        if path.absolute().resolve().is_relative_to(out.resolve()):
            raise BadInputError(f"{source}: the file for {key.label} ({path}) lies inside --out {out}, whose "
                                "outputs an import replaces; copy it elsewhere first")
    identity = RunIdentity(method=name, method_config={"imported_from": str(source.resolve())}, seed=None,
                           manifest_sha256=benchmark.manifest_sha256)
    root = ensure_writable_dir(out)
    started_at = utc_now()
    provenance = ImportProvenance(
        source=str(source.resolve()), layout=layout, source_sha256=sha256_file(source) if layout == "csv" else None,
        files={}, missing=[], invalid={}, unmatched=unmatched[:_UNMATCHED_LISTED], unmatched_count=len(unmatched),
        imported_at=started_at)
    with run_file_lock(root, None):
        with folder_lock(root):
            previous = _check_out_folder(root, identity)
            items, kept = _plan(rows, found, root, _earlier_files(previous))
            # The claim comes first, then the earlier import's other outputs go: at no moment does the folder
            # claim to be complete over a mix of two imports.
            _write_record(root, config, identity, benchmark, previous, started_at,
                          ImportProvenance(**{**asdict(provenance), "files": kept}), None)
            _remove_outputs_outside(root, {EditKey(*label.split("/", 1)) for label in kept})
            failures_file(root, None).unlink(missing_ok=True)
        files, missing, invalid = _import_items(items, kept, FailureLog(failures_file(root, None)),
                                                _progress(len(items), config.progress, name))
        provenance = ImportProvenance(**{**asdict(provenance), "files": files, "missing": missing, "invalid": invalid})
        counts = RunCounts(selected=len(items), written=len(files) - len(kept), skipped=len(kept),
                           failed=len(missing) + len(invalid))
        _write_record(root, config, identity, benchmark, previous, started_at, provenance, counts)
    return ImportSummary(out=root, expected=len(items), imported=len(files),
                         resized=sum(1 for record in files.values() if record.original_size),
                         missing=len(missing), invalid=len(invalid), unmatched=len(unmatched),
                         elapsed_s=time.perf_counter() - started, kept=len(kept),
                         unmatched_names=tuple(unmatched[:5]))


def _import_items(items: list[_Item], kept: dict[str, ImportedFile], failures: FailureLog,
                  progress) -> tuple[dict[str, ImportedFile], list[str], dict[str, str]]:
    """Write each item's output (those in ``kept`` are there already); record each missing or unusable one in
    ``failures``. Returns (files by label, missing labels, invalid labels -> reason)."""
    files: dict[str, ImportedFile] = {}
    missing: list[str] = []
    invalid: dict[str, str] = {}
    for item in items:
        label = item.key.label
        if label in kept:
            files[label] = kept[label]
        elif item.path is None or not item.path.is_file():
            missing.append(label)
            where = f" ({item.path})" if item.path is not None else ""
            failures.record(item.key, f"missing: no output file for {label}{where}", status="missing_output")
        else:
            try:
                if item.sha256 is None:
                    raise BadInputError("cannot be read")
                image, record = check_image(item.path, item.row.width, item.row.height)
            except BadInputError as reason:
                invalid[label] = f"{item.path}: {reason}"
                failures.record(item.key, f"invalid: {item.path}: {reason}", status="bad_output")
            else:
                atomic_write_bytes(item.target, encode_output_png(image))
                files[label] = ImportedFile(**{**asdict(record), "sha256": item.sha256})
        progress.update(1)
    progress.close()
    failures.save()
    return files, missing, invalid


def run_json(record: RunRecord, provenance: ImportProvenance) -> str:
    """run.json's text for an imported run: the run record, ``provenance: "imported"`` and ``imported``
    (keys sorted at every level, two-space indent, as ``RunRecord.to_json``)."""
    content = record.as_dict()
    content["provenance"] = IMPORTED
    content["imported"] = asdict(provenance)
    return json.dumps(content, indent=2, sort_keys=True)
