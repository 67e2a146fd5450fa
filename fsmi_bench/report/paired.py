"""``fsmi report --paired A B``: method A against method B on the same (case, mask type) pairs.

Per (kind, mask group, metric): rows of A and B are matched on (case_id, mask_type), keeping pairs
where both are valid. Differences are A - B. A case's difference is the mean over its matched mask
types, because the mask conditions of one case are not independent; the paired bootstrap resamples
cases (seeded) and Wilcoxon's signed-rank test runs on the per-case differences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fsmi_bench.errors import BadInputError
from fsmi_bench.report.aggregate import POOLED_GROUPS, MaskGroup
from fsmi_bench.report.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, paired_difference_test
from fsmi_bench.schema import REPORTED

PAIRED_COLUMNS = ["kind", "group", "metric", "higher_is_better", "n_pairs", "n_cases", "mean_a", "mean_b",
                  "difference", "ci_low", "ci_high", "p_bootstrap", "p_wilcoxon"]


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
                            "p_bootstrap": test.p_bootstrap, "p_wilcoxon": test.p_wilcoxon})
    if not records:
        raise BadInputError(f"{method_a} and {method_b} share no valid (case, mask type, metric) rows")
    return pd.DataFrame(records, columns=PAIRED_COLUMNS)


def render_paired(tests: pd.DataFrame, method_a: str, method_b: str, resamples: int, seed: int) -> str:
    """A Markdown table of ``paired_tests`` output, with what the columns mean."""
    lines = [f"### Paired test: {method_a} (A) vs {method_b} (B), difference = A - B", "",
             "| Kind | Mask | Metric | n cases (pairs) | A | B | A - B [95 % CI] | p bootstrap | p Wilcoxon | better |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in tests.itertuples(index=False):
        if np.isnan(row.difference) or row.difference == 0 or row.ci_low <= 0 <= row.ci_high:
            better = "no difference shown"
        else:
            a_higher = row.difference > 0
            better = method_a if a_higher == row.higher_is_better else method_b
        lines.append(f"| {row.kind} | {row.group} | {row.metric} | {row.n_cases} ({row.n_pairs}) | {row.mean_a:.4f} | "
                     f"{row.mean_b:.4f} | {row.difference:+.4f} [{row.ci_low:+.4f}, {row.ci_high:+.4f}] | "
                     f"{row.p_bootstrap:.4g} | {row.p_wilcoxon:.4g} | {better} |")
    lines += ["", f"Paired bootstrap over cases ({resamples} resamples, seed {seed}); a case's difference is the mean "
              "over its matched mask types; Wilcoxon signed-rank on per-case differences. 'better' names a method "
              "only when the 95 % interval excludes 0.", ""]
    return "\n".join(lines)
