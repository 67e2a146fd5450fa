"""One PNG per (kind, metric): mean by mask type, one line per method, bootstrap 95 % error bars.

Reported (paper) rows have no per-mask-type values, so they are not plotted. Files are written
atomically; the Agg backend is used so that no display is needed.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

from fsmi_bench.io import atomic_write_bytes
from fsmi_bench.report.aggregate import MEASURED
from fsmi_bench.report.tables import measure_label
from fsmi_bench.schema import MASK_CONDITIONS


def plot_metric(cells: pd.DataFrame, kind: str, metric: str) -> bytes:
    """PNG bytes of ``metric`` by mask type for the measured cells of ``kind``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = cells[(cells["source"] == MEASURED) & (cells["kind"] == kind) & (cells["metric"] == metric)
                 & cells["group"].isin(MASK_CONDITIONS)]
    methods = sorted(set(mine["method"]))
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
        axes.errorbar(positions, means, yerr=[lower, upper], marker="o", capsize=3, label=label)
    higher = bool(mine["higher_is_better"].iloc[0]) if len(mine) else True
    axes.set_xticks(range(len(MASK_CONDITIONS)), MASK_CONDITIONS, rotation=30, ha="right")
    axes.set_xlabel("mask type")
    axes.set_ylabel(f"{metric} ({'higher' if higher else 'lower'} is better)")
    axes.set_title(f"{kind}-image {measure_label(metric)} ({metric}) by mask type, mean and 95 % bootstrap CI")
    axes.grid(axis="y", alpha=0.3)
    if methods:
        axes.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def write_plots(cells: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write ``<kind>_<metric>.png`` for every measured (kind, metric); returns the paths written."""
    out_dir = Path(out_dir)
    measured = cells[(cells["source"] == MEASURED) & cells["group"].isin(MASK_CONDITIONS)]
    written = []
    for kind, metric in sorted(set(zip(measured["kind"], measured["metric"]))):
        path = out_dir / f"{kind}_{metric}.png"
        atomic_write_bytes(path, plot_metric(cells, kind, metric))
        written.append(path)
    return written
