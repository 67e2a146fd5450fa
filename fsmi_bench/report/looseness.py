"""How a method's scores change as its free-shape mask gets looser: tables by mask IoU and by coverage of
the edit region, and a robustness summary per method (the drop from the full mask to free-shape masks,
and the slope against mask IoU), all with bootstrap intervals over cases.

The x of every analysis is the drawn *shape's* overlap with the edit region (results columns ``shape_iou``
and ``shape_coverage``, from ``ManifestRow.shape_overlap``): a filled mask's own IoU; for an ``_open``
outline, that of the area it encloses (the stroke alone overlaps the region by a few per cent whatever
the loop's size). The full mask (the edit region itself) is IoU 1 and coverage 1.

A bin's cell is computed as every other cell (``aggregate``): a case's value is the mean over its valid
outputs in the bin, the cell's mean is over cases, and the interval is a seeded bootstrap over cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fsmi_bench.report.stats import bootstrap_mean_ci, bootstrap_ratio_ci
from fsmi_bench.report.tables import REFERENCE_FLOORS, SECTIONS_BY_KIND, Block, CellView, Row, Table, TableOptions
from fsmi_bench.schema import FULL_MASK, REPORTED

IOU_EDGES = (0.4, 0.5, 0.6, 0.7)  # the benchmark draws free shapes with IoU in [0.3, 0.85]
COVERAGE_EDGES = (0.75, 0.9, 0.99)
SLOPE_STEP = 0.1  # slopes are given per +0.1 of mask IoU
FULL_BIN = "full mask"
KEY = ["method", "kind", "metric"]


@dataclass(frozen=True)
class Binning:
    """Bins of one overlap column: below ``edges[0]``, between consecutive edges, from ``edges[-1]`` up."""

    column: str  # "shape_iou" or "shape_coverage"
    name: str  # how tables name it
    edges: tuple[float, ...]

    def labels(self) -> list[str]:
        edges = self.edges
        inner = [f"{self.name} {low:g}-{high:g}" for low, high in zip(edges, edges[1:])]
        return [f"{self.name} < {edges[0]:g}", *inner, f"{self.name} ≥ {edges[-1]:g}"]

    def index(self, values) -> np.ndarray:
        """The bin of each value: 0 below the first edge, ``len(edges)`` from the last edge up."""
        return np.searchsorted(np.asarray(self.edges, dtype=np.float64), np.asarray(values), side="right")


def check_edges(edges, what: str) -> tuple[float, ...]:
    """Bin edges strictly increasing, inside (0, 1]; ``what`` names the option in the error."""
    from fsmi_bench.errors import BadInputError

    edges = tuple(float(edge) for edge in edges)
    if not edges or any(not 0.0 < edge <= 1.0 for edge in edges) or list(edges) != sorted(set(edges)):
        raise BadInputError(f"{what} {','.join(f'{edge:g}' for edge in edges) or '(none)'}: give increasing "
                            "edges between 0 and 1, for example 0.4,0.5,0.6,0.7")
    return edges


def _valid(frame: pd.DataFrame) -> pd.DataFrame:
    """Measured rows with a value (status "ok"; reported rows have no per-case values)."""
    return frame[(frame["status"] == "ok") & np.isfinite(frame["value"])]


def bin_cells(frame: pd.DataFrame, binning: Binning, resamples: int, seed: int) -> pd.DataFrame:
    """One cell per (method, kind, metric, bin): mean [interval] n over cases, and ``x``, the mean
    overlap of the bin's masks (1 for the full mask, whose bin is ``len(labels)``)."""
    valid = _valid(frame)
    free = valid[(valid["mask_type"] != FULL_MASK) & np.isfinite(valid[binning.column])]
    full = valid[valid["mask_type"] == FULL_MASK]
    binned = pd.concat([free.assign(bin=binning.index(free[binning.column]), x=free[binning.column]),
                        full.assign(bin=len(binning.edges) + 1, x=1.0)], ignore_index=True)
    per_case = binned.groupby(KEY + ["bin", "case_id"], sort=True).agg(
        value=("value", "mean"), x=("x", "mean"), outputs=("value", "size"), higher=("higher_is_better", "first"))
    cells = []
    for (method, kind, metric, bin_index), group in per_case.groupby(level=[0, 1, 2, 3], sort=True):
        interval = bootstrap_mean_ci(group["value"].to_numpy(), resamples, seed)
        cells.append({"method": method, "kind": kind, "metric": metric, "bin": int(bin_index),
                      "mean": interval.mean, "ci_low": interval.ci_low, "ci_high": interval.ci_high,
                      "n": float(interval.n), "n_outputs": float(group["outputs"].sum()),
                      "x": float(group["x"].mean()), "higher_is_better": bool(group["higher"].iloc[0])})
    return pd.DataFrame(cells, columns=KEY + ["bin", "mean", "ci_low", "ci_high", "n", "n_outputs", "x",
                                              "higher_is_better"])


def robustness_cells(frame: pd.DataFrame, resamples: int, seed: int) -> pd.DataFrame:
    """Per (method, kind, metric): ``drop``, the mean over cases of (full-mask value - the case's mean over
    its free-shape masks); ``slope``, the change per +``SLOPE_STEP`` of shape IoU fitted within cases over
    free-shape masks (each case's values and IoUs centred on its own means, so that easy and hard cases
    with different IoUs do not pose as an IoU effect). Both with bootstrap intervals over cases."""
    valid = _valid(frame)
    free = valid[valid["mask_type"] != FULL_MASK]
    full = valid[valid["mask_type"] == FULL_MASK].groupby(KEY + ["case_id"])["value"].mean()
    drops = (full - free.groupby(KEY + ["case_id"])["value"].mean()).dropna().sort_index()
    fit = free[np.isfinite(free["shape_iou"])]
    groups = fit.groupby(KEY + ["case_id"], sort=True)
    centred_x = fit["shape_iou"] - groups["shape_iou"].transform("mean")
    centred_y = fit["value"] - groups["value"].transform("mean")
    sums = pd.DataFrame({"sxy": centred_x * centred_y, "sxx": centred_x * centred_x}).groupby(
        [fit[name] for name in KEY + ["case_id"]], sort=True).sum()
    sums = sums[sums["sxx"] > 1e-12]  # a case whose masks all have one IoU says nothing of the slope
    cells = []
    for key in sorted(set(drops.index.droplevel(-1)) | set(sums.index.droplevel(-1))):
        if key in drops.index.droplevel(-1):
            interval = bootstrap_mean_ci(drops.loc[key].to_numpy(), resamples, seed)
            cells.append(dict(zip(KEY, key), measure="drop", mean=interval.mean, ci_low=interval.ci_low,
                              ci_high=interval.ci_high, n=float(interval.n)))
        if key in sums.index.droplevel(-1):
            mine = sums.loc[key]
            interval = bootstrap_ratio_ci(mine["sxy"].to_numpy(), mine["sxx"].to_numpy(), resamples, seed)
            cells.append(dict(zip(KEY, key), measure="slope", mean=interval.mean * SLOPE_STEP,
                              ci_low=interval.ci_low * SLOPE_STEP, ci_high=interval.ci_high * SLOPE_STEP,
                              n=float(interval.n)))
    return pd.DataFrame(cells, columns=KEY + ["measure", "mean", "ci_low", "ci_high", "n"])


def _sections(kind: str, cells: pd.DataFrame, options: TableOptions):
    """The kind's metric sections, keeping metrics asked for that have a value in ``cells``."""
    present = set(cells.loc[cells["kind"] == kind, "metric"])
    sections = tuple((name, tuple(metric for metric in metrics if metric in present
                                  and (options.metrics is None or metric in options.metrics)))
                     for name, metrics in SECTIONS_BY_KIND[kind])
    return tuple((name, metrics) for name, metrics in sections if metrics)


def _methods(cells: pd.DataFrame, kind: str, options: TableOptions) -> list[str]:
    present = set(cells.loc[cells["kind"] == kind, "method"])
    if options.methods is None:
        return sorted(present)
    return [method for method in options.methods if method in present]


def _table(title: str, kind: str, sections, methods: list[str], blocks: list[tuple[str, str, pd.DataFrame]],
           notes: list[str], decimals: int, arrows: bool = True, block_header: str = "Mask") -> Table:
    """A ``Table`` whose blocks are (label, group name, cells indexed by (method, metric)); never bold."""
    metrics = [metric for _, names in sections for metric in names]
    missing_note = "no mask of this bin among the cases compared (or no valid value)"
    built = []
    for label, group, cells in blocks:
        rows = []
        for method in methods:
            views = []
            for metric in metrics:
                if (method, metric) in cells.index:
                    cell = cells.loc[(method, metric)]
                    views.append(CellView(cell["mean"], cell["ci_low"], cell["ci_high"], cell["n"], False, 0, False))
                else:
                    if missing_note not in notes:
                        notes.append(missing_note)
                    nan = float("nan")
                    views.append(CellView(nan, nan, nan, nan, False, notes.index(missing_note) + 1, False))
            rows.append(Row(f"{method} (floor)" if method in REFERENCE_FLOORS else method, method, "measured",
                            tuple(views)))
        built.append(Block(label, group, tuple(rows)))
    higher = tuple(not metric.endswith("_lpips") for metric in metrics)
    return Table(title, kind, sections, tuple(built), tuple(notes), higher, decimals, arrows, block_header)


def _part(cells: pd.DataFrame, first: object) -> pd.DataFrame:
    """The cells under ``first`` in the first level of their index, indexed by the other levels (none: empty)."""
    if first in cells.index.get_level_values(0):
        return cells.loc[first]
    return cells.iloc[:0].droplevel(0)


def looseness_tables(frame: pd.DataFrame, resamples: int, seed: int, options: TableOptions,
                     iou_edges=IOU_EDGES, coverage_edges=COVERAGE_EDGES) -> tuple[list[Table], pd.DataFrame,
                                                                                    list[str]]:
    """Per kind: the robustness summary, then the tables by mask IoU and by coverage bin.

    ``frame``: measured results rows (the same cases as the other tables). Returns the tables, the IoU
    bin cells (for ``plots.plot_by_iou``) and one line per thing not made.
    """
    measured = frame[frame["status"] != REPORTED]
    if options.methods is not None:
        measured = measured[measured["method"].isin(options.methods)]
    free = measured[measured["mask_type"] != FULL_MASK]
    if free.empty:  # the paper's rows alone, or full masks only: nothing to bin
        return [], pd.DataFrame(), []
    if not np.isfinite(free["shape_iou"]).any():
        return [], pd.DataFrame(), ["no tables by mask IoU: the results have no free-shape rows with a shape IoU "
                                    "(a table scored by an older fsmi lacks it; score the run again)"]
    bins = [Binning("shape_iou", "IoU", tuple(iou_edges)), Binning("shape_coverage", "coverage", tuple(coverage_edges))]
    cells = {binning.column: bin_cells(measured, binning, resamples, seed) for binning in bins}
    robust = robustness_cells(measured, resamples, seed)
    cell_rule = (f"Cells: mean over cases [95 % bootstrap percentile interval, {resamples} resamples of cases, "
                 f"seed {seed}] n = cases")
    shape_rule = ("of the drawn shape with the edit region (for _open masks, of the area the outline encloses), "
                  "the 8 free-shape types pooled; the full mask is the region itself")
    tables = []
    for kind in ("multi", "single"):
        sections = _sections(kind, cells["shape_iou"], options)
        if not sections:
            continue
        methods = _methods(cells["shape_iou"], kind, options)
        mine = robust[robust["kind"] == kind].set_index(["measure", "method", "metric"]).sort_index()
        measures = ((f"Drop, {FULL_BIN} - free-shape", "drop"), (f"Slope per +{SLOPE_STEP:g} IoU", "slope"))
        blocks = [(label, measure, _part(mine, measure)) for label, measure in measures]
        notes = [f"{cell_rule}. Drop: per case, the full-mask value minus the mean over its free-shape masks. Slope: "
                 f"change per +{SLOPE_STEP:g} of mask IoU ({shape_rule}), fitted within cases over free-shape "
                 "masks. Positive = better with tighter masks, except for LPIPS (lower is better)."]
        tables.append(_table(f"{kind.capitalize()}-image robustness to loose masks", kind, sections, methods, blocks,
                             notes, options.decimals, arrows=False, block_header="Measure"))
        for binning in bins:
            binned = cells[binning.column]
            binned = binned[binned["kind"] == kind].set_index(["bin", "method", "metric"]).sort_index()
            labels = binning.labels() + [f"{FULL_BIN} ({binning.name} 1)"]
            blocks = [(label, f"{binning.column}:{index}", _part(binned, index)) for index, label in enumerate(labels)]
            notes = [f"{cell_rule} with a mask in the bin; a case's value is the mean over its masks in the bin. "
                     f"Mask {binning.name} {shape_rule}."]
            tables.append(_table(f"{kind.capitalize()}-image editing by mask {binning.name}", kind, sections, methods,
                                 blocks, notes, options.decimals, block_header=f"Mask {binning.name}"))
    return tables, cells["shape_iou"], []
