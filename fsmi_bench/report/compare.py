"""``fsmi compare``: re-aggregate results exactly as a baseline leaderboard was made and diff every cell.

A cell matches when its mean and interval bounds agree within ``|now - baseline| <= tol + rtol * |baseline|``
(defaults 1e-6 and 1e-6: far below any printed digit, far above float noise of a re-run on the same
machine), its n and number of cases are equal, its numbers of outputs are equal (where the baseline has
them), both or neither are missing, and its metric spec, protocol and benchmark version are the same (a
differing spec is named key by key: ``metric_spec.size``). The comparison fails when any of that differs,
or a cell with a value disappears or appears. A cell that has no valid value on either side (absent on
one, empty on the other, as missing weights leave it) is counted apart as "missing on both sides", never
as a difference.
Results are re-aggregated with the bootstrap resamples and seed recorded in the baseline's header,
so interval bounds are comparable too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from fsmi_bench.errors import BadInputError

DEFAULT_TOL = 1e-6
DEFAULT_RTOL = 1e-6
VALUE_FIELDS = ("mean", "ci_low", "ci_high")
COUNT_FIELDS = ("n", "n_cases", "n_outputs", "n_outputs_total")
TEXT_FIELDS = ("benchmark_version", "protocol")


@dataclass(frozen=True)
class CellDifference:
    """One mismatch. ``field`` is a value column, or "cell" when the whole cell is missing or new."""

    method: str
    source: str
    kind: str
    group: str
    metric: str
    field: str
    baseline: float | str
    now: float | str

    @property
    def delta(self) -> float:
        try:
            return float(self.now) - float(self.baseline)
        except (TypeError, ValueError):
            return float("nan")


@dataclass(frozen=True)
class Comparison:
    ok: bool
    cells_compared: int
    differences: tuple[CellDifference, ...]
    problems: tuple[str, ...]  # version / protocol mismatches
    missing_both: tuple[tuple[str, str], ...] = ()  # (kind, metric) of cells without a value on either side
    missing_both_cells: int = 0

    def _missing_line(self) -> str:
        if not self.missing_both_cells:
            return ""
        metrics = ", ".join(f"{kind} {metric}" for kind, metric in self.missing_both)
        return (f"{self.missing_both_cells} cells missing on both sides (no valid value in either, "
                f"e.g. missing weights; not differences): {metrics}")

    def text(self) -> str:
        """A readable verdict with one line per differing cell."""
        missing = self._missing_line()
        if self.ok:
            return f"OK: all {self.cells_compared} cells match the baseline" + (f"\n{missing}" if missing else "")
        lines = [f"FAIL: {len(self.differences)} cell differences, {len(self.problems)} other problems "
                 f"({self.cells_compared} cells in the baseline)"]
        if missing:
            lines.append(f"  {missing}")
        lines += [f"  {problem}" for problem in self.problems]
        if self.differences:
            lines.append("  method | source | kind | group | metric | field | baseline | now | delta")
        for diff in self.differences:
            lines.append(f"  {diff.method} | {diff.source} | {diff.kind} | {diff.group} | {diff.metric} | "
                         f"{diff.field} | {_show(diff.baseline)} | {_show(diff.now)} | {_show(diff.delta)}")
        return "\n".join(lines)


def _show(value) -> str:
    if isinstance(value, float):
        return "missing" if math.isnan(value) else f"{value:.10g}"
    return str(value)


def _values_match(baseline: float, now: float, tol: float, rtol: float) -> bool:
    if math.isnan(baseline) or math.isnan(now):
        return math.isnan(baseline) and math.isnan(now)
    return abs(now - baseline) <= tol + rtol * abs(baseline)


def _spec_fields(text: str) -> dict:
    """A cell's metric spec (JSON, or several joined by " | ") as flat ``key -> value`` text."""
    fields: dict = {}
    for index, part in enumerate(str(text).split(" | ") if text else []):
        prefix = f"[{index}]." if index else ""
        try:
            parsed = json.loads(part)
        except (json.JSONDecodeError, RecursionError):  # not a spec of fsmi's: compared as text
            parsed = None
        if not isinstance(parsed, dict):
            fields[f"{prefix}(text)"] = part
            continue
        for key, value in parsed.items():
            fields[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return fields


def _text_differences(key: tuple, old: dict, new: dict) -> list[CellDifference]:
    """Metric spec (key by key), protocol and benchmark version of one cell, baseline vs now."""
    differences = []
    for field in TEXT_FIELDS:
        if str(old[field]) != str(new[field]):
            differences.append(CellDifference(*key, field, str(old[field]), str(new[field])))
    if str(old["metric_spec"]) != str(new["metric_spec"]):
        old_spec, new_spec = _spec_fields(old["metric_spec"]), _spec_fields(new["metric_spec"])
        for name in sorted(set(old_spec) | set(new_spec)):
            if old_spec.get(name) != new_spec.get(name):
                differences.append(CellDifference(*key, f"metric_spec.{name}", old_spec.get(name, "absent"),
                                                  new_spec.get(name, "absent")))
    return differences


def _has_value(row: dict) -> bool:
    return not math.isnan(float(row["mean"]))


def compare_cells(baseline, now, tol: float = DEFAULT_TOL, rtol: float = DEFAULT_RTOL) -> tuple[CellDifference, ...]:
    """Differences between two cell frames (``aggregate.CELL_COLUMNS``); cells without a value on
    either side are not differences (``missing_on_both_sides`` lists them)."""
    from fsmi_bench.report.aggregate import CELL_KEY

    base_rows = {tuple(row[key] for key in CELL_KEY): row for row in baseline.to_dict("records")}
    now_rows = {tuple(row[key] for key in CELL_KEY): row for row in now.to_dict("records")}
    differences = []
    for key in sorted(set(base_rows) | set(now_rows)):
        if key not in now_rows:
            if _has_value(base_rows[key]):
                differences.append(CellDifference(*key, "cell", "present", "missing"))
            continue
        if key not in base_rows:
            if _has_value(now_rows[key]):
                differences.append(CellDifference(*key, "cell", "missing", "present"))
            continue
        old, new = base_rows[key], now_rows[key]
        for field in VALUE_FIELDS:
            if not _values_match(float(old[field]), float(new[field]), tol, rtol):
                differences.append(CellDifference(*key, field, float(old[field]), float(new[field])))
        for field in COUNT_FIELDS:
            if field not in old or (field in ("n_outputs", "n_outputs_total") and old["source"] == "measured"
                                    and math.isnan(float(old[field]))):
                continue  # a baseline written before outputs were counted
            if not _values_match(float(old[field]), float(new[field]), 0.0, 0.0):
                differences.append(CellDifference(*key, field, float(old[field]), float(new[field])))
        if _has_value(old) or _has_value(new):
            differences.extend(_text_differences(key, old, new))
    return tuple(differences)


def missing_on_both_sides(baseline, now) -> list[tuple]:
    """Cell keys without a valid value on either side: absent or empty in the baseline, and absent or
    empty now (for instance metrics whose weights neither machine had)."""
    from fsmi_bench.report.aggregate import CELL_KEY

    base_rows = {tuple(row[key] for key in CELL_KEY): row for row in baseline.to_dict("records")}
    now_rows = {tuple(row[key] for key in CELL_KEY): row for row in now.to_dict("records")}
    return [key for key in sorted(set(base_rows) | set(now_rows))
            if not any(_has_value(rows[key]) for rows in (base_rows, now_rows) if key in rows)]


def compare_with_baseline(results, baseline_path, tol: float = DEFAULT_TOL, rtol: float = DEFAULT_RTOL,
                          metrics: tuple[str, ...] | None = None) -> Comparison:
    """Aggregate ``results`` (paths) as the leaderboard ``baseline_path`` was made and compare every cell
    (only the cells of ``metrics`` when given)."""
    from fsmi_bench.report.aggregate import aggregate_cells
    from fsmi_bench.report.leaderboard import bootstrap_settings, read_leaderboard
    from fsmi_bench.report.results_table import load_results

    if tol < 0 or rtol < 0:
        raise BadInputError("--tol and --rtol must be non-negative")
    header, baseline = read_leaderboard(baseline_path)
    resamples, seed = bootstrap_settings(header)
    extra = None
    if any("paper's reported rows" in note for note in header["note"]):
        from fsmi_bench.report.reported import paper_reported_frame

        extra = paper_reported_frame()
    frame = load_results(results, extra=extra)
    now = aggregate_cells(frame, resamples=resamples, seed=seed)
    problems = []
    measured = frame[frame["status"] != "reported"]
    for field in ("benchmark_version", "protocol"):
        recorded = header.get(field, "")
        current = ", ".join(sorted(set(measured[field]) - {""})) or "reported only"
        if recorded != current:
            problems.append(f"{field.replace('_', ' ')} differs: baseline {recorded!r}, now {current!r}")
    if metrics:
        known = sorted(set(baseline["metric"]) | set(now["metric"]))
        unknown = [metric for metric in metrics if metric not in known]
        if unknown:
            raise BadInputError(f"--metrics: {', '.join(unknown)} neither in the baseline nor in the results "
                                f"(they hold: {', '.join(known)})")
        baseline = baseline[baseline["metric"].isin(metrics)]
        now = now[now["metric"].isin(metrics)]
    differences = compare_cells(baseline, now, tol, rtol)
    missing = missing_on_both_sides(baseline, now)
    missing_metrics = tuple(dict.fromkeys((key[2], key[4]) for key in missing))
    return Comparison(not differences and not problems, len(baseline), differences, tuple(problems),
                      missing_metrics, len(missing))
