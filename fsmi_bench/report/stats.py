"""Bootstrap intervals and paired tests, seeded so that a report is reproducible byte for byte.

Resampling draws case indices with ``numpy.random.default_rng([seed, n])``: the draw depends only on
the seed and the number of cases, never on which other cells a report holds or on row order (values
are sorted by case id before they get here). Intervals are percentile intervals.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from fsmi_bench.errors import BadInputError

DEFAULT_SEED = 0
DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95


# A draw holds resamples x cases indices (8 bytes each): 100,000 resamples of 205 cases is 160 MB.
MAX_RESAMPLES = 100_000


def check_bootstrap(resamples, seed, where: str) -> tuple[int, int]:
    """``(resamples, seed)`` if usable (1 to ``MAX_RESAMPLES`` resamples, a seed from 0 to 2**63 - 1), else one
    ``BadInputError`` naming ``where`` they came from."""
    whole = (isinstance(resamples, numbers.Integral) and not isinstance(resamples, bool),
             isinstance(seed, numbers.Integral) and not isinstance(seed, bool))
    if not whole[0] or not 1 <= resamples <= MAX_RESAMPLES:
        raise BadInputError(f"{where}: bootstrap resamples must be a whole number from 1 to {MAX_RESAMPLES}, "
                            f"not {str(resamples)[:40]}")
    if not whole[1] or not 0 <= seed < 2**63:
        raise BadInputError(f"{where}: the bootstrap seed must be a whole number from 0 to 2**63 - 1, "
                            f"not {str(seed)[:40]}")
    return int(resamples), int(seed)


def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, n])
    return rng.integers(0, n, size=(resamples, n))


@dataclass(frozen=True)
class MeanInterval:
    """Mean of per-case values with a bootstrap percentile interval; n = number of cases."""

    mean: float
    ci_low: float
    ci_high: float
    n: int


def bootstrap_mean_ci(values, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                      confidence: float = CONFIDENCE) -> MeanInterval:
    """Mean of ``values`` (one per case, finite) and its bootstrap ``confidence`` interval over cases.

    One case gives a zero-width interval; no case gives NaNs and n = 0.
    """
    values = np.asarray(values, dtype=np.float64)
    n = int(values.size)
    if n == 0:
        return MeanInterval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(values.mean())
    if n == 1:
        return MeanInterval(mean, mean, mean, 1)
    means = values[_resample_indices(n, resamples, seed)].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    # Percentiles of float means can sit a rounding error outside [min, max] of the means;
    # the interval must always contain the point estimate.
    return MeanInterval(mean, float(min(low, mean)), float(max(high, mean)), n)


def bootstrap_ratio_ci(numerators, denominators, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                       confidence: float = CONFIDENCE) -> MeanInterval:
    """``sum(numerators) / sum(denominators)`` over cases, with its bootstrap interval over cases.

    One pair per case, denominators positive. A slope fitted within cases is such a ratio: the sum over
    cases of each case's centred cross-products over the sum of its centred squares. ``mean`` holds the
    ratio, n the number of cases; no case gives NaNs.
    """
    numerators = np.asarray(numerators, dtype=np.float64)
    denominators = np.asarray(denominators, dtype=np.float64)
    n = int(numerators.size)
    if n == 0:
        return MeanInterval(float("nan"), float("nan"), float("nan"), 0)
    ratio = float(numerators.sum() / denominators.sum())
    if n == 1:
        return MeanInterval(ratio, ratio, ratio, 1)
    indices = _resample_indices(n, resamples, seed)
    ratios = numerators[indices].sum(axis=1) / denominators[indices].sum(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return MeanInterval(ratio, float(min(low, ratio)), float(max(high, ratio)), n)


@dataclass(frozen=True)
class PairedTest:
    """Paired comparison of A and B on the same cases: difference = A - B.

    n_pairs: matched (case, mask type) pairs; n_cases: cases they come from (the resampling unit).
    p_bootstrap: two-sided, from the paired bootstrap of the mean difference over cases.
    p_wilcoxon: Wilcoxon signed-rank over per-case mean differences (NaN with fewer than 2 cases).
    """

    mean_difference: float
    ci_low: float
    ci_high: float
    n_pairs: int
    n_cases: int
    p_bootstrap: float
    p_wilcoxon: float


def paired_difference_test(case_differences, n_pairs: int, resamples: int = DEFAULT_RESAMPLES,
                           seed: int = DEFAULT_SEED, confidence: float = CONFIDENCE) -> PairedTest:
    """Test whether the mean of per-case differences (A - B, one value per case) is zero."""
    from scipy import stats

    differences = np.asarray(case_differences, dtype=np.float64)
    n = int(differences.size)
    if n == 0:
        nan = float("nan")
        return PairedTest(nan, nan, nan, n_pairs, 0, nan, nan)
    interval = bootstrap_mean_ci(differences, resamples, seed, confidence)
    if n == 1:
        return PairedTest(interval.mean, interval.ci_low, interval.ci_high, n_pairs, 1, float("nan"), float("nan"))
    means = differences[_resample_indices(n, resamples, seed)].mean(axis=1)
    # Two-sided bootstrap p-value: how often the resampled mean lands on the other side of zero;
    # the +1 terms keep it above zero, as a p-value from a finite resample must be.
    below = int(np.count_nonzero(means <= 0.0))
    above = int(np.count_nonzero(means >= 0.0))
    p_bootstrap = min(1.0, 2.0 * (min(below, above) + 1) / (resamples + 1))
    if np.all(differences == 0.0):
        p_wilcoxon = 1.0
    else:
        p_wilcoxon = float(stats.wilcoxon(differences, zero_method="wilcox").pvalue)
    return PairedTest(interval.mean, interval.ci_low, interval.ci_high, n_pairs, n, p_bootstrap, p_wilcoxon)
