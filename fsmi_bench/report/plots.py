"""One PNG per (kind, metric): mean by mask type, a point per method with its bootstrap 95 % interval.

Mask types are categories, so points are never joined by lines. A (kind, metric) without any valid
value gets no file, and one line saying why. Reported (paper) rows have no per-mask-type values, so
they are not plotted. Files are written atomically; the Agg backend needs no display.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pandas as pd

from fsmi_bench.io import atomic_write_bytes
from fsmi_bench.report.aggregate import MEASURED
from fsmi_bench.report.notes import fetch_hint, measure_label, missing_weight_names, short_reason
from fsmi_bench.report.tables import SECTIONS_BY_KIND
from fsmi_bench.schema import MASK_CONDITIONS

_ROW_COUNT = re.compile(r" \(\d+ rows?\)")
# Panels in the tables' column order.
LAYOUT_ORDER = tuple(dict.fromkeys(metric for sections in SECTIONS_BY_KIND.values()
                                   for _, metrics in sections for metric in metrics))


def plot_metric(cells: pd.DataFrame, kind: str, metric: str, methods: tuple[str, ...] | None = None) -> bytes:
    """PNG bytes of ``metric`` by mask type for the measured cells of ``kind`` (``methods``: which, in
    legend order; default all, by name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = cells[(cells["source"] == MEASURED) & (cells["kind"] == kind) & (cells["metric"] == metric)
                 & cells["group"].isin(MASK_CONDITIONS)]
    present = set(mine["method"])
    methods = sorted(present) if methods is None else [method for method in methods if method in present]
    figure, axes = plt.subplots(figsize=(8, 4.2), dpi=100)
    width = 0.6 / max(len(methods), 1)
    for index, method in enumerate(methods):
        rows = mine[mine["method"] == method].set_index("group")
        positions, means, lower, upper = [], [], [], []
        for position, mask_type in enumerate(MASK_CONDITIONS):
            if mask_type not in rows.index or math.isnan(rows.at[mask_type, "mean"]):
                continue
            row = rows.loc[mask_type]
            positions.append(position + (index - (len(methods) - 1) / 2) * width)
            means.append(row["mean"])
            lower.append(row["mean"] - row["ci_low"])
            upper.append(row["ci_high"] - row["mean"])
        label = method if positions else f"{method} (no valid value)"
        axes.errorbar(positions, means, yerr=[lower, upper], marker="o", linestyle="none", capsize=3, label=label)
    higher = bool(mine["higher_is_better"].iloc[0]) if len(mine) else True
    axes.set_xticks(range(len(MASK_CONDITIONS)), MASK_CONDITIONS, rotation=30, ha="right")
    axes.set_xlabel("mask type")
    axes.set_ylabel(f"{metric} ({'higher' if higher else 'lower'} is better)")
    axes.set_title(f"{kind}-image {measure_label(metric)} ({metric}) by mask type, mean and 95 % bootstrap CI")
    axes.grid(axis="y", alpha=0.3)
    if methods:
        axes.legend(fontsize="small")
    return _png(figure)


def _png(figure) -> bytes:
    """The figure as PNG bytes (no software tag, so that the same plot is the same bytes), then closed."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def write_plots(cells: pd.DataFrame, out_dir: str | Path, methods: tuple[str, ...] | None = None,
                metrics: tuple[str, ...] | None = None) -> tuple[list[Path], list[str]]:
    """Write ``<kind>_<metric>.png`` for every measured (kind, metric) with a valid value.

    Returns (paths written, one line per plot not written and why).
    """
    out_dir = Path(out_dir)
    measured = cells[(cells["source"] == MEASURED) & cells["group"].isin(MASK_CONDITIONS)]
    if methods is not None:
        measured = measured[measured["method"].isin(methods)]
    if metrics is not None:
        measured = measured[measured["metric"].isin(metrics)]
    written, skipped = [], []
    without_weights: dict[str, list[str]] = {}  # plots missing only for want of weights: said once, at the end
    for kind, metric in sorted(set(zip(measured["kind"], measured["metric"]))):
        mine = measured[(measured["kind"] == kind) & (measured["metric"] == metric)]
        if not mine["mean"].notna().any():
            reasons = [_ROW_COUNT.sub("", reason) for reason in dict.fromkeys(mine["reason"]) if reason]
            names = [name for reason in reasons for name in missing_weight_names(reason)]
            if reasons and names and all(reason.startswith("missing_weights") for reason in reasons):
                without_weights[f"{kind} {metric}"] = names
                continue
            why = ": " + short_reason(reasons[0]) if reasons else ""
            skipped.append(f"no plot for {kind} {metric}: no valid value{why}")
            continue
        path = out_dir / f"{kind}_{metric}.png"
        atomic_write_bytes(path, plot_metric(measured, kind, metric, methods))
        written.append(path)
    if without_weights:
        names = list(dict.fromkeys(name for found in without_weights.values() for name in found))
        skipped.append(f"{len(without_weights)} metrics have no values and no plot ({', '.join(without_weights)}): "
                       f"their weights are not on this machine ({', '.join(names)}); {fetch_hint(names)}")
    return written, skipped


def plot_by_iou(bin_cells: pd.DataFrame, kind: str, methods: tuple[str, ...] | None = None) -> bytes:
    """PNG bytes: one panel per metric of ``kind``, each method's mean by mask-IoU bin (x: the bin's mean
    IoU; the full mask at 1) with its bootstrap 95 % interval (``looseness.bin_cells``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = bin_cells[(bin_cells["kind"] == kind) & bin_cells["mean"].notna()]
    present = set(mine["method"])
    methods = sorted(present) if methods is None else [method for method in methods if method in present]
    order = {metric: index for index, metric in enumerate(LAYOUT_ORDER)}
    metrics = sorted(set(mine["metric"]), key=lambda metric: (order.get(metric, len(order)), metric))
    columns = min(4, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows + 0.6), dpi=100, squeeze=False)
    for panel, metric in zip(axes.flat, metrics):
        for index, method in enumerate(methods):
            rows_of = mine[(mine["method"] == method) & (mine["metric"] == metric)].sort_values("bin")
            shift = (index - (len(methods) - 1) / 2) * 0.008  # keeps the intervals of methods apart
            x = rows_of["x"].to_numpy() + shift
            means = rows_of["mean"].to_numpy()
            panel.errorbar(x, means, yerr=[means - rows_of["ci_low"].to_numpy(), rows_of["ci_high"].to_numpy() - means],
                           marker="o", markersize=4, linestyle="none", capsize=2, color=f"C{index}", label=method)
        higher = bool(mine.loc[mine["metric"] == metric, "higher_is_better"].iloc[0])
        panel.set_title(f"{measure_label(metric)} ({metric}) {'↑' if higher else '↓'}", fontsize="medium")
        ticks = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0]
        panel.set_xticks(ticks, [f"{tick:g}" for tick in ticks[:-1]] + ["full"])
        panel.axvline(0.9, color="0.7", linewidth=0.8, linestyle=":")
        panel.grid(alpha=0.3)
    for panel in list(axes.flat)[len(metrics):]:
        panel.set_visible(False)
    for panel in axes[-1]:
        panel.set_xlabel("mask IoU with the edit region")
    figure.suptitle(f"{kind}-image scores by mask IoU: mean and 95 % bootstrap CI over cases per IoU bin\n"
                    "(x: the bin's mean IoU; the full mask at 1)", fontsize="medium")
    if methods:
        axes.flat[0].legend(fontsize="small")
    return _png(figure)


def write_iou_plots(bin_cells: pd.DataFrame, out_dir: str | Path, methods: tuple[str, ...] | None = None,
                    metrics: tuple[str, ...] | None = None) -> list[Path]:
    """Write ``<kind>_by_mask_iou.png`` for every kind with a valid value; returns the paths written."""
    if bin_cells.empty:
        return []
    cells = bin_cells if metrics is None else bin_cells[bin_cells["metric"].isin(metrics)]
    written = []
    for kind in sorted(set(cells.loc[cells["mean"].notna(), "kind"])):
        path = Path(out_dir) / f"{kind}_by_mask_iou.png"
        atomic_write_bytes(path, plot_by_iou(cells, kind, methods))
        written.append(path)
    return written
