"""``fsmi score``: one run's outputs -> the long results table (parquet + CSV beside it).

One row per (method, case_id, mask_type, metric) with the columns fixed in the shared contracts.
Outputs that are missing, failed or unreadable, and metrics whose weights are missing, are rows
with NaN and a status and reason, counted in the summary, never skipped or scored as blank images.
Scoring into an existing results file replaces that method's rows and keeps the others, after
checking that the file holds the same benchmark build and protocol.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import ensure_writable_dir, exclusive_lock
from fsmi_bench.schema import KINDS, MEASURED_STATUSES, RESULT_COLUMNS, RESULT_FLOAT_COLUMNS

# How long a scoring pass waits for another one writing the same results table.
RESULTS_LOCK_WAIT_S = 600.0


@dataclass(frozen=True)
class ScoreConfig:
    """Options of ``fsmi score``.

    metrics: metric names to compute (None = every metric of the protocol). weights: explicit weight
    paths {name: path} (from ``--weights`` and ``--weights-config``). cache_dir: feature/value cache
    folder (None = ``$FSMI_CACHE_DIR/features``); ``use_cache=False`` stores and reuses nothing.
    out: results parquet (None = ``RUNDIR/results-<protocol>.parquet``).
    """

    bench: Path
    run: Path
    protocol: str = "paper"
    metrics: tuple[str, ...] | None = None
    batch_size: int = 16
    device: str = "cpu"
    out: Path | None = None
    strict_weights: bool = False
    weights: dict = field(default_factory=dict)
    cache_dir: Path | None = None
    use_cache: bool = True
    progress: bool = False


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring pass did: where the table went and how many rows ended in each status."""

    method: str
    out: Path | None
    csv: Path | None
    rows: int
    counts: dict
    model_calls: int
    cache_hits: int
    not_selected: str = ""  # the (case, mask type) pairs left out because the run did not select them

    def lines(self) -> list[str]:
        counts = ", ".join(f"{status}: {self.counts.get(status, 0)}" for status in MEASURED_STATUSES)
        lines = [f"{self.method}: {self.rows} rows ({counts}); {self.model_calls} model inputs encoded, "
                 f"{self.cache_hits} cache hits"]
        if self.not_selected:
            lines.append(self.not_selected)
        if self.out is not None:
            lines.append(f"wrote {self.out} and {self.csv}")
        return lines


def _run_provenance(info: dict) -> str:
    weights = {name: (value or {}).get("sha256") for name, value in (info.get("weights") or {}).items()}
    provenance = {"method": info.get("method"), "method_config": info.get("method_config"),
                  "weights_sha256": weights, "git_commit": info.get("git_commit"),
                  "seed": info.get("seed"), "size_mapping_rule": (info.get("size_mapping") or {}).get("rule"),
                  "fsmi_version": info.get("fsmi_version")}
    if info.get("method_target"):  # a method given as package.module:Class or file.py:Class
        provenance["method_target"] = info["method_target"]
    return json.dumps(provenance, sort_keys=True)


def method_target_of(run_provenance: str) -> str | None:
    """The ``method_target`` in a results row's run provenance (None for a method given by name)."""
    try:
        return json.loads(run_provenance).get("method_target")
    except (ValueError, AttributeError):
        return None


def _check_run_matches(benchmark, info: dict, run_root: Path) -> None:
    version = info.get("benchmark_version")
    if version is not None and version != benchmark.version:
        raise BadInputError(f"run {run_root} was made on benchmark version {version}, "
                            f"the benchmark folder is {benchmark.version}; score it against its own build")
    manifest = info.get("manifest_sha256")
    if manifest is not None and manifest != benchmark.manifest_sha256:
        raise BadInputError(f"run {run_root} was made on another build of the benchmark "
                            f"(manifest sha256 {manifest[:12]}... vs {benchmark.manifest_sha256[:12]}...)")


def selected_pairs(benchmark, run) -> tuple[set[tuple[str, str]] | None, str]:
    """The (case, mask type) pairs some invocation of the run selected (``--kinds``, ``--limit``,
    ``--mask-types``, as run.json records them), and those selections in words; (None, "") for a run.json
    that records none. Shards are not a selection: a shard that never ran leaves its outputs missing."""
    from fsmi_bench.run.engine import select_rows

    selections = [item.get("selection") or {} for item in run.info.get("invocations") or []]
    if not selections:
        return None, ""
    pairs, words = set(), []
    for selection in selections:
        mask_types, limit = selection.get("mask_types"), selection.get("limit")
        kinds = tuple(selection.get("kinds") or KINDS)
        try:
            rows = select_rows(benchmark, tuple(mask_types) if mask_types is not None else None, kinds, limit)
        except BadInputError:  # a selection this benchmark has no case for ran nothing
            rows = []
        pairs.update((row.case_id, row.mask_type) for row in rows)
        said = [f"--kinds {','.join(kinds)}" if set(kinds) != set(KINDS) else "",
                f"--limit {limit}" if limit is not None else "",
                f"--mask-types {','.join(mask_types)}" if mask_types is not None else ""]
        words.append(" ".join(part for part in said if part) or "everything")
    return pairs, "; ".join(dict.fromkeys(words))


def select_specs(protocol: str, metrics: tuple[str, ...] | None) -> dict:
    from fsmi_bench.metrics.specs import ALL_METRICS, metric_spec

    names = metrics or ALL_METRICS
    return {name: metric_spec(protocol, name) for name in names}


def score_run(config: ScoreConfig, models=None):
    """Score one run folder; returns (results DataFrame, ScoreSummary) and writes ``config.out``.

    ``models`` (a ``ModelBank``) may be given by tests and the speed script; by default weights are
    looked up locally (see ``fsmi_bench.metrics.weights``).
    """
    import pandas as pd

    from fsmi_bench.benchmark.manifest import load_benchmark
    from fsmi_bench.metrics.models import ModelBank
    from fsmi_bench.run.folder import load_run
    from fsmi_bench.run.output_writer import VerifiedOutputs
    from fsmi_bench.scoring.feature_cache import FeatureCache
    from fsmi_bench.scoring.scorer import OutputImage, Scorer

    out = Path(config.out) if config.out else Path(config.run) / f"results-{config.protocol}.parquet"
    if out.suffix != ".parquet":
        raise BadInputError(f"--out {out}: the results table is written as .parquet (CSV beside it)")
    benchmark = load_benchmark(config.bench, verify=True)
    run = load_run(config.run)
    _check_run_matches(benchmark, run.info, Path(config.run))
    specs = select_specs(config.protocol, config.metrics)
    models = models or ModelBank(config.weights, config.device)
    if not config.use_cache:
        cache = FeatureCache(None)
    else:
        cache = FeatureCache(config.cache_dir) if config.cache_dir else FeatureCache.default()
    scorer = Scorer(specs, models, cache, batch_size=config.batch_size,
                    strict_weights=config.strict_weights, progress=config.progress)
    # Score what the run was asked to make: a pair it never selected (a --limit run, say) is no missing
    # output, unless an output or a failure is there all the same.
    selected, selection_words = selected_pairs(benchmark, run)
    outputs, kept = {}, []
    for row in benchmark.rows:
        key = (row.case_id, row.mask_type)
        if selected is not None and key not in selected and key not in run.failures \
                and not run.output_path(*key).is_file():
            continue
        kept.append(row)
        if key in run.failures:
            outputs[key] = OutputImage(*key, None, run.failure_status(key), run.failures[key])
        else:
            outputs[key] = OutputImage(*key, run.output_path(*key))
    resize = bool((run.info.get("size_mapping") or {}).get("rule"))
    left_out = len(benchmark.rows) - len(kept)
    values = scorer.score(replace(benchmark, rows=tuple(kept)), outputs, resize_to_scene=resize,
                          recorded_sha256=VerifiedOutputs.of_run_folder(Path(config.run)).sha256)

    rows_by_key = {(row.case_id, row.mask_type): row for row in benchmark.rows}
    provenance = _run_provenance(run.info)
    records = []
    for item in values:
        row = rows_by_key[(item.case_id, item.mask_type)]
        spec = specs[item.metric]
        shape_iou, shape_coverage = row.shape_overlap
        records.append({
            "method": run.method, "case_id": item.case_id, "kind": row.kind, "op": row.op,
            "scenario": row.scenario, "complexity": row.complexity, "mask_type": item.mask_type,
            "shape_iou": shape_iou, "shape_coverage": shape_coverage, "metric": item.metric,
            "value": float(item.value), "status": item.status, "reason": item.reason,
            "higher_is_better": bool(spec.higher_is_better), "metric_spec": scorer.spec_json(item.metric),
            "protocol": config.protocol, "benchmark_version": benchmark.version,
            "manifest_sha256": benchmark.manifest_sha256, "run_provenance": provenance})
    frame = pd.DataFrame.from_records(records, columns=list(RESULT_COLUMNS))
    frame = frame.astype({**{name: "float64" for name in RESULT_FLOAT_COLUMNS}, "higher_is_better": "bool"})
    frame = frame.sort_values(["method", "case_id", "mask_type", "metric"], kind="stable").reset_index(drop=True)
    ensure_writable_dir(out.parent)
    # Read, merge and write under one lock: two `fsmi score --out` into one file keep both methods' rows.
    with exclusive_lock(out.parent / f".{out.name}.lock", f"results table {out}", wait_s=RESULTS_LOCK_WAIT_S):
        table = merge_into_existing(out, frame, run.method)
        csv = out.with_suffix(".csv")
        if not _holds_already(out, csv, table):  # a rescore with nothing new rewrites nothing
            csv = write_results(table, out)
    counts = dict(Counter(frame["status"]))
    not_selected = (f"not scored: {left_out} of {len(benchmark.rows)} (case, mask type) pairs, which the run did not "
                    f"select ({selection_words}) and holds no output for" if left_out else "")
    summary = ScoreSummary(run.method, out, csv, len(frame), counts, scorer.model_calls, cache.hits, not_selected)
    return frame, summary


def merge_into_existing(out: Path, frame, method: str):
    """``frame`` plus the rows of other methods already in ``out`` (same build and protocol only)."""
    import pandas as pd

    if not out.is_file() or frame.empty:
        return frame
    try:
        existing = pd.read_parquet(out)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise BadInputError(f"cannot read existing results {out}: {error}") from None
    if existing.empty:
        return frame
    for column in ("benchmark_version", "protocol", "manifest_sha256"):
        theirs, ours = set(existing[column]), set(frame[column])
        if theirs != ours:
            raise BadInputError(f"{out} holds results with {column} {sorted(theirs)}, these are {sorted(ours)}; "
                                "write them to another file")
    ours = {method_target_of(text) for text in set(frame["run_provenance"])}
    theirs = {method_target_of(text) for text in set(existing.loc[existing["method"] == method, "run_provenance"])}
    if theirs and theirs != ours:
        # Scoring replaces a method's rows: another method of the same name would silently vanish.
        def describe(targets):
            return ", ".join(sorted(target or "a method given by name" for target in targets))
        raise BadInputError(f"{out} already holds results named {method!r} from another method ({describe(theirs)}; "
                            f"this run: {describe(ours)}); give one another name (`name = ...` on its class) "
                            "or score into another --out")
    kept = existing[existing["method"] != method]
    merged = pd.concat([kept, frame], ignore_index=True)
    return merged.sort_values(["method", "case_id", "mask_type", "metric"], kind="stable").reset_index(drop=True)


def _holds_already(out: Path, csv: Path, table) -> bool:
    """True if ``out`` holds exactly ``table`` and its CSV and sidecar were written with it (not older)."""
    import pandas as pd

    from fsmi_bench.scoring.results_csv import sidecar_path

    try:
        written = out.stat().st_mtime_ns
        if any(not path.is_file() or path.stat().st_mtime_ns < written for path in (csv, sidecar_path(csv))):
            return False
        existing = pd.read_parquet(out)
    except Exception:  # absent or unreadable: written again
        return False
    return list(existing.columns) == list(table.columns) and existing.equals(table.reset_index(drop=True))


def write_results(frame, out: Path) -> Path:
    """Write ``frame`` to ``out`` (parquet) and ``out`` with suffix .csv, both atomically; the CSV keeps the
    texts that repeat on every row once, in a sidecar (``results_csv``)."""
    import io

    from fsmi_bench.io import atomic_write_bytes
    from fsmi_bench.scoring.results_csv import write_results_csv

    if out.suffix != ".parquet":
        raise BadInputError(f"--out {out}: the results table is written as .parquet (CSV beside it)")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write_bytes(out, buffer.getvalue())
    return write_results_csv(frame, out.with_suffix(".csv"))
