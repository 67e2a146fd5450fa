"""``fsmi report --paired A B``: method A against method B on the same (case, mask type) pairs.

Per (kind, mask group, metric): rows of A and B are matched on (case_id, mask_type), keeping pairs
where both are valid. Differences are A - B. A case's difference is the mean over its matched mask
types, because the mask conditions of one case are not independent; the paired bootstrap resamples
cases (seeded) and Wilcoxon's signed-rank test runs on the per-case differences.

A verdict ("better") needs all of: at least ``MIN_CASES_FOR_VERDICT`` cases, a Wilcoxon p-value below
``ALPHA`` after Holm's correction across every row of the report (a report tests many metrics and mask
groups at once; uncorrected, one of twelve null rows would pass by chance about half the time), and a
bootstrap interval that excludes 0. The effect size is Cohen's d_z: the mean per-case difference over
the standard deviation of the per-case differences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fsmi_bench.errors import BadInputError
from fsmi_bench.report.aggregate import POOLED_GROUPS, MaskGroup
from fsmi_bench.report.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, paired_difference_test
from fsmi_bench.schema import REPORTED

PAIRED_COLUMNS = ["kind", "group", "metric", "higher_is_better", "n_pairs", "n_cases", "mean_a", "mean_b",
                  "difference", "ci_low", "ci_high", "effect_size", "p_bootstrap", "p_wilcoxon", "p_holm", "verdict"]
MIN_CASES_FOR_VERDICT = 10  # below this, Wilcoxon cannot reach a corrected p < 0.05 across a report's rows
ALPHA = 0.05
NO_DIFFERENCE = "no difference shown"


def holm_adjusted(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error across all ``p_values``); NaN stays NaN."""
    p_values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p_values.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p_values))
    if finite.size == 0:
        return adjusted
    order = finite[np.argsort(p_values[finite], kind="stable")]
    count = finite.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (count - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def effect_size(case_differences) -> float:
    """Cohen's d_z of per-case differences; NaN with fewer than 2 cases, 0 when every difference is 0."""
    differences = np.asarray(case_differences, dtype=np.float64)
    if differences.size < 2:
        return float("nan")
    spread = float(differences.std(ddof=1))
    if spread == 0.0:
        return 0.0 if float(differences.mean()) == 0.0 else float("inf") * np.sign(differences.mean())
    return float(differences.mean()) / spread


def verdict(row: dict, method_a: str, method_b: str) -> str:
    """The better method's name, or why none is named."""
    if row["n_cases"] < MIN_CASES_FOR_VERDICT:
        return f"no verdict: n < {MIN_CASES_FOR_VERDICT}"
    difference = row["difference"]
    if np.isnan(difference) or difference == 0 or row["ci_low"] <= 0 <= row["ci_high"] \
            or not row["p_holm"] < ALPHA:
        return NO_DIFFERENCE
    return method_a if (difference > 0) == row["higher_is_better"] else method_b


def paired_tests(frame: pd.DataFrame, method_a: str, method_b: str, groups: tuple[MaskGroup, ...] = POOLED_GROUPS,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """One row per (kind, group, metric) that both methods have; columns ``PAIRED_COLUMNS``."""
    measured = frame[frame["status"] != REPORTED]
    methods = set(measured["method"])
    for method in (method_a, method_b):
        if method not in methods:
            raise BadInputError(f"method {method!r} is not in the results (measured methods: "
                                f"{', '.join(sorted(methods)) or 'none'})")
    if method_a == method_b:
        raise BadInputError("--paired needs two different methods")
    valid = measured[(measured["status"] == "ok") & np.isfinite(measured["value"])]
    key = ["kind", "case_id", "mask_type", "metric"]
    side_a = valid[valid["method"] == method_a][key + ["value", "higher_is_better"]]
    side_b = valid[valid["method"] == method_b][key + ["value"]]
    pairs = side_a.merge(side_b, on=key, suffixes=("_a", "_b"))
    pairs["difference"] = pairs["value_a"] - pairs["value_b"]
    records = []
    for group in groups:
        in_group = pairs[pairs["mask_type"].isin(group.mask_types)]
        for (kind, metric), rows in in_group.groupby(["kind", "metric"], sort=True):
            per_case = rows.groupby("case_id", sort=True)[["difference", "value_a", "value_b"]].mean()
            test = paired_difference_test(per_case["difference"].to_numpy(), len(rows), resamples, seed)
            records.append({"kind": kind, "group": group.name, "metric": metric,
                            "higher_is_better": bool(rows["higher_is_better"].iloc[0]),
                            "n_pairs": test.n_pairs, "n_cases": test.n_cases,
                            "mean_a": float(per_case["value_a"].mean()), "mean_b": float(per_case["value_b"].mean()),
                            "difference": test.mean_difference, "ci_low": test.ci_low, "ci_high": test.ci_high,
                            "effect_size": effect_size(per_case["difference"].to_numpy()),
                            "p_bootstrap": test.p_bootstrap, "p_wilcoxon": test.p_wilcoxon})
    if not records:
        raise BadInputError(f"{method_a} and {method_b} share no valid (case, mask type, metric) rows")
    adjusted = holm_adjusted([record["p_wilcoxon"] for record in records])
    for record, p_holm in zip(records, adjusted):
        record["p_holm"] = float(p_holm)
        record["verdict"] = verdict(record, method_a, method_b)
    return pd.DataFrame(records, columns=PAIRED_COLUMNS)


def render_paired(tests: pd.DataFrame, method_a: str, method_b: str, resamples: int, seed: int,
                  decimals: int = 4) -> str:
    """A Markdown table of ``paired_tests`` output, with what the columns mean."""
    from fsmi_bench.report.render import markdown_escape

    name_a, name_b = markdown_escape(method_a), markdown_escape(method_b)
    lines = [f"### Paired test: {name_a} (A) vs {name_b} (B), difference = A - B", "",
             "| Kind | Mask | Metric | n cases (pairs) | A | B | A - B [95 % CI] | d_z | p bootstrap | p Wilcoxon "
             "| p Holm | better |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in tests.itertuples(index=False):
        lines.append(f"| {row.kind} | {row.group} | {row.metric} | {row.n_cases} ({row.n_pairs}) | "
                     f"{row.mean_a:.{decimals}f} | {row.mean_b:.{decimals}f} | {row.difference:+.{decimals}f} "
                     f"[{row.ci_low:+.{decimals}f}, {row.ci_high:+.{decimals}f}] | {row.effect_size:+.2f} | "
                     f"{row.p_bootstrap:.3g} | {row.p_wilcoxon:.3g} | {row.p_holm:.3g} | "
                     f"{markdown_escape(row.verdict)} |")
    lines += ["", f"Paired bootstrap over cases ({resamples} resamples, seed {seed}); a case's difference is the mean "
              "over its matched mask types; Wilcoxon signed-rank on per-case differences, Holm-corrected across "
              f"the {len(tests)} rows (p Holm); d_z = mean difference / standard deviation of the per-case "
              f"differences. 'better' names a method only with at least {MIN_CASES_FOR_VERDICT} cases, "
              f"p Holm < {ALPHA} and a 95 % interval that excludes 0.", ""]
    return "\n".join(lines)
