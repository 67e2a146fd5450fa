"""``fsmi compare``: re-aggregate results exactly as a baseline leaderboard was made and diff every cell.

A cell matches when its mean and interval bounds agree within ``|now - baseline| <= tol + rtol * |baseline|``
(defaults 1e-6 and 1e-6: far below any printed digit, far above float noise of a re-run on the same
machine), its n, number of cases and numbers of outputs are equal (the output counts only where the
baseline has them), and both or neither are missing. The comparison fails
when any value moves, a cell disappears or appears, or the benchmark version or protocol differs.
Results are re-aggregated with the bootstrap resamples and seed recorded in the baseline's header,
so interval bounds are comparable too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fsmi_bench.errors import BadInputError

DEFAULT_TOL = 1e-6
DEFAULT_RTOL = 1e-6
VALUE_FIELDS = ("mean", "ci_low", "ci_high")
COUNT_FIELDS = ("n", "n_cases", "n_outputs", "n_outputs_total")


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

    def text(self) -> str:
        """A readable verdict with one line per differing cell."""
        if self.ok:
            return f"OK: all {self.cells_compared} cells match the baseline"
        lines = [f"FAIL: {len(self.differences)} cell differences, {len(self.problems)} other problems "
                 f"({self.cells_compared} cells in the baseline)"]
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


def compare_cells(baseline, now, tol: float = DEFAULT_TOL, rtol: float = DEFAULT_RTOL) -> tuple[CellDifference, ...]:
    """Differences between two cell frames (``aggregate.CELL_COLUMNS``)."""
    from fsmi_bench.report.aggregate import CELL_KEY

    base_rows = {tuple(row[key] for key in CELL_KEY): row for row in baseline.to_dict("records")}
    now_rows = {tuple(row[key] for key in CELL_KEY): row for row in now.to_dict("records")}
    differences = []
    for key in sorted(set(base_rows) | set(now_rows)):
        if key not in now_rows:
            differences.append(CellDifference(*key, "cell", "present", "missing"))
            continue
        if key not in base_rows:
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
    return tuple(differences)


def compare_with_baseline(results, baseline_path, tol: float = DEFAULT_TOL, rtol: float = DEFAULT_RTOL) -> Comparison:
    """Aggregate ``results`` (paths) as the leaderboard ``baseline_path`` was made and compare every cell."""
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
    differences = compare_cells(baseline, now, tol, rtol)
    return Comparison(not differences and not problems, len(baseline), differences, tuple(problems))
