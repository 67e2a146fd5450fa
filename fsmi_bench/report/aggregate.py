"""From the long results frame to cells: one per (method, source, kind, mask group, metric).

How a cell is computed (the same for every table, plot, leaderboard and ``fsmi compare``):
1. keep the rows of the cell's mask group (e.g. the 8 free-shape types) and, for tag groups, tag value;
2. a case's value is the mean over that case's *valid* rows (status "ok", finite value) in the group,
   so each case weighs the same however many mask types it has;
3. the cell's mean is the mean over cases, n is the number of cases with a valid value, and the
   interval is a seeded bootstrap over cases (``stats.bootstrap_mean_ci``).
Rows that are not valid are never averaged as zeros; they are counted in ``reason``, and
``n_outputs`` / ``n_outputs_total`` count the valid rows (outputs) beside all rows, so that a case that
lost some of its mask outputs (averaged over the rest, still counted in n) shows in every table.
Reported (paper) rows become cells of their own (source "reported") with no interval and no n.

Tables compare methods on the same cases: ``common_cases`` keeps, per (kind, metric), only the
(case, mask type) pairs that every compared method has a valid value for, so that no cell is better
because it was measured on easier or fewer cases. ``fsmi report --all-cases`` skips that step; every cell
then carries ``case_set`` (a hash of its valid pairs) so that the table can refuse to bold over unequal sets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fsmi_bench.report.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_mean_ci
from fsmi_bench.schema import FREE_SHAPE_TYPES, MASK_CONDITIONS, REPORTED

CELL_KEY = ["method", "source", "kind", "group", "metric"]
CELL_COLUMNS = CELL_KEY + ["mean", "ci_low", "ci_high", "n", "n_cases", "n_outputs", "n_outputs_total", "reason",
                           "higher_is_better", "benchmark_version", "protocol", "metric_spec"]
MEASURED = "measured"
TAGS = ("op", "scenario", "complexity")


@dataclass(frozen=True)
class MaskGroup:
    """A set of rows pooled into one cell: mask types, optionally restricted to one tag value."""

    name: str
    label: str
    mask_types: tuple[str, ...]
    tag: str = ""
    tag_value: str = ""


ALL = MaskGroup("all", "All Masks", MASK_CONDITIONS)
FULL = MaskGroup("full", "Full Mask", ("full",))
FREE_SHAPE = MaskGroup("free_shape", "Free-Shape Mask", FREE_SHAPE_TYPES)
POOLED_GROUPS = (ALL, FULL, FREE_SHAPE)
PER_MASK_TYPE_GROUPS = tuple(MaskGroup(mask_type, mask_type, (mask_type,)) for mask_type in FREE_SHAPE_TYPES)


def tag_groups(frame: pd.DataFrame) -> tuple[MaskGroup, ...]:
    """One group per value of each tag present in the measured rows, over all mask types."""
    measured = frame[frame["status"] != REPORTED]
    groups = []
    for tag in TAGS:
        for value in sorted(set(measured[tag]) - {"", "none"}):
            groups.append(MaskGroup(f"{tag}={value}", f"{tag} = {value}", MASK_CONDITIONS, tag, value))
    return tuple(groups)


def default_groups(frame: pd.DataFrame) -> tuple[MaskGroup, ...]:
    """Pooled groups, then each free-shape type (``full`` is already a pooled group), then tags."""
    return POOLED_GROUPS + PER_MASK_TYPE_GROUPS + tag_groups(frame)


def _reason_text(counts: list[tuple[str, str, int]]) -> str:
    """``status: reason (k rows)`` for the invalid rows of a cell, most frequent first, at most 3."""
    texts = sorted(((f"{status}: {reason}" if reason else status), count) for status, reason, count in counts)
    texts.sort(key=lambda item: -item[1])
    parts = [f"{text} ({count} rows)" for text, count in texts]
    return "; ".join(parts[:3]) + ("; ..." if len(parts) > 3 else "")


def _joined(values) -> str:
    return " | ".join(value for value in dict.fromkeys(values) if value != "")


@dataclass(frozen=True)
class Coverage:
    """How many (case, mask type) pairs of one method a (kind, metric) comparison kept.

    valid: pairs with a valid value for this method; compared: pairs every compared method has valid
    (the same number for all of them); total: distinct pairs in that method's rows.
    """

    kind: str
    metric: str
    method: str
    valid: int
    compared: int
    total: int


def common_cases(frame: pd.DataFrame) -> tuple[pd.DataFrame, tuple[Coverage, ...]]:
    """``frame`` reduced, per (kind, metric), to the (case, mask type) pairs every method has valid.

    A method with no valid value at all for a (kind, metric) (missing weights, say) does not empty the
    comparison for the others: it keeps its rows, shows "—" with its reason, and is left out of the
    intersection. Rows without a valid value stay (they are never averaged, and they count the outputs a
method lost). Reported rows are kept as they are. Returns the reduced frame and the coverage.
    """
    is_measured = frame["status"] != REPORTED
    measured, reported = frame[is_measured], frame[~is_measured]
    is_valid = (measured["status"] == "ok") & np.isfinite(measured["value"])
    pair_key = ["kind", "metric", "case_id", "mask_type"]
    valid = measured[is_valid]
    methods_with_values = valid.groupby(["kind", "metric"])["method"].nunique().rename("methods_needed")
    methods_per_pair = valid.groupby(pair_key)["method"].nunique().rename("methods_valid").reset_index()
    methods_per_pair = methods_per_pair.merge(methods_with_values.reset_index(), on=["kind", "metric"])
    common = methods_per_pair.loc[methods_per_pair["methods_valid"] == methods_per_pair["methods_needed"], pair_key]
    common_count = common.groupby(["kind", "metric"]).size().to_dict()
    in_common = measured.merge(common.assign(_common=True), on=pair_key, how="left")["_common"].fillna(False)
    in_common = in_common.to_numpy(dtype=bool)
    has_values = measured.set_index(["kind", "metric", "method"]).index.isin(
        valid.set_index(["kind", "metric", "method"]).index.unique())
    # Methods without any valid value keep their rows: their cells then say why they are empty. Invalid
    # rows are kept too: never averaged, they count a method's lost outputs and give the reason.
    kept = measured[in_common | ~has_values | ~is_valid.to_numpy()]
    coverage = []
    totals = measured.groupby(["kind", "metric", "method"])[["case_id", "mask_type"]].apply(
        lambda rows: len(rows.drop_duplicates()))
    valid_counts = valid.groupby(["kind", "metric", "method"])[["case_id", "mask_type"]].apply(
        lambda rows: len(rows.drop_duplicates()))
    for (kind, metric, method), total in totals.items():
        count = int(valid_counts.get((kind, metric, method), 0))
        coverage.append(Coverage(kind, metric, method, count,
                                 int(common_count.get((kind, metric), 0)) if count else 0, int(total)))
    return pd.concat([kept, reported], ignore_index=True), tuple(coverage)


def _measured_cells(measured: pd.DataFrame, group: MaskGroup, resamples: int, seed: int) -> list[dict]:
    rows = measured[measured["mask_type"].isin(group.mask_types)]
    if group.tag:
        rows = rows[rows[group.tag] == group.tag_value]
    if rows.empty:
        return []
    cell_key = ["method", "kind", "metric"]
    is_valid = (rows["status"] == "ok") & np.isfinite(rows["value"])
    valid, invalid = rows[is_valid], rows[~is_valid]
    # One groupby per quantity, then a plain loop over cells: per-cell DataFrame slicing is what
    # would make a full report slow.
    per_case = {key: series.to_numpy() for key, series in
                valid.groupby(cell_key + ["case_id"], sort=True)["value"].mean().groupby(level=[0, 1, 2])}
    summary = rows.groupby(cell_key, sort=True).agg(
        n_cases=("case_id", "nunique"), n_outputs_total=("case_id", "size"),
        higher_is_better=("higher_is_better", "first"),
        benchmark_version=("benchmark_version", _joined), protocol=("protocol", _joined),
        all_specs=("metric_spec", _joined))
    valid_specs = valid.groupby(cell_key, sort=True)["metric_spec"].agg(_joined).to_dict()
    pairs = valid["case_id"] + "/" + valid["mask_type"]
    case_sets = pairs.groupby([valid[name] for name in cell_key], sort=True).agg(
        lambda values: hashlib.sha256("\n".join(sorted(set(values))).encode()).hexdigest()[:16]).to_dict()
    valid_outputs = valid.groupby(cell_key, sort=True).size().to_dict()
    reasons: dict[tuple, list] = {}
    for (method, kind, metric, status, reason), count in invalid.groupby(
            cell_key + ["status", "reason"], sort=True).size().items():
        reasons.setdefault((method, kind, metric), []).append((status, reason, int(count)))
    cells = []
    for key, info in zip(summary.index, summary.to_dict("records")):
        interval = bootstrap_mean_ci(per_case.get(key, np.empty(0)), resamples, seed)
        method, kind, metric = key
        cells.append({
            "method": method, "source": MEASURED, "kind": kind, "group": group.name, "metric": metric,
            "mean": interval.mean, "ci_low": interval.ci_low, "ci_high": interval.ci_high,
            "n": float(interval.n), "n_cases": float(info["n_cases"]),
            "n_outputs": float(valid_outputs.get(key, 0)), "n_outputs_total": float(info["n_outputs_total"]),
            "reason": _reason_text(reasons.get(key, [])),
            "higher_is_better": bool(info["higher_is_better"]), "benchmark_version": info["benchmark_version"],
            "protocol": info["protocol"], "metric_spec": valid_specs.get(key, info["all_specs"]),
            "case_set": case_sets.get(key, ""),
        })
    return cells


def _reported_cells(reported: pd.DataFrame, group_names: set[str]) -> list[dict]:
    cells = []
    for row in reported.itertuples(index=False):
        if row.mask_type not in group_names:
            continue
        cells.append({
            "method": row.method, "source": REPORTED, "kind": row.kind, "group": row.mask_type,
            "metric": row.metric, "mean": float(row.value), "ci_low": float("nan"), "ci_high": float("nan"),
            "n": float("nan"), "n_cases": float("nan"), "n_outputs": float("nan"), "n_outputs_total": float("nan"),
            "reason": row.reason,
            "higher_is_better": bool(row.higher_is_better), "benchmark_version": row.benchmark_version,
            "protocol": row.protocol, "metric_spec": row.metric_spec, "case_set": "",
        })
    return cells


def aggregate_cells(frame: pd.DataFrame, groups: tuple[MaskGroup, ...] | None = None,
                    resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """All cells of ``frame`` for ``groups`` (default: ``default_groups``), columns ``CELL_COLUMNS``
    plus ``case_set`` (a hash of the cell's valid (case, mask type) pairs; not written to leaderboards).

    Sorted by (kind, group order, method, source, metric) so that output is stable.
    """
    groups = default_groups(frame) if groups is None else groups
    measured = frame[frame["status"] != REPORTED]
    cells = []
    for group in groups:
        cells.extend(_measured_cells(measured, group, resamples, seed))
    cells.extend(_reported_cells(frame[frame["status"] == REPORTED], {group.name for group in groups}))
    result = pd.DataFrame(cells, columns=CELL_COLUMNS + ["case_set"])
    order = {group.name: index for index, group in enumerate(groups)}
    result["_order"] = result["group"].map(order)
    result = result.sort_values(["kind", "_order", "source", "method", "metric"], kind="stable")
    return result.drop(columns="_order").reset_index(drop=True)
