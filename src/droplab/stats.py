"""Telling a real effect from seed noise: per-variant summaries and Welch comparisons.

Every variant is trained under several seeds, so a single difference in means says little: it only
counts when its confidence interval excludes zero.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as sps

from droplab.errors import DroplabError

DIFFERS = "differs"
NOISE = "not distinguishable from seed noise at this number of seeds"
TOO_FEW = "inconclusive: needs at least 2 seeds of each"

class StatsError(DroplabError):
    """Values that no interval can be computed from: none at all, not finite, or a bad confidence level."""


@dataclass(frozen=True)
class Summary:
    """One variant's metric over seeds; sd and the CI are None with a single seed."""

    n: int
    mean: float
    sd: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Comparison:
    """mean(a) - mean(b) with its Welch CI; CI and p are None when either side has fewer than 2 seeds."""

    n_a: int
    n_b: int
    difference: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str


def _checked(values: Sequence[float], confidence: float) -> list[float]:
    if not 0 < confidence < 1:
        raise StatsError(f"confidence {confidence!r}: expected a number strictly between 0 and 1")
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise StatsError(f"values {values!r}: expected numbers, one per seed") from None
    if not values:
        raise StatsError("no values: expected at least one seed's result")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise StatsError(f"value {bad[0]!r}: expected finite numbers (a diverged run?)")
    return values


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, sample SD and Student-t CI of the mean over seeds."""
    values = _checked(values, confidence)
    n, mean = len(values), statistics.fmean(values)
    if n == 1:
        return Summary(n, mean, None, None, None)
    sd = statistics.stdev(values)  # exact arithmetic: identical seeds give exactly 0, not rounding noise
    half = sps.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)


def compare(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Comparison:
    """Welch's t-test of a against b: DIFFERS iff the CI of mean(a) - mean(b) excludes 0."""
    a, b = _checked(a, confidence), _checked(b, confidence)
    difference = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Comparison(len(a), len(b), difference, None, None, None, TOO_FEW)
    if len(set(a)) == 1 and len(set(b)) == 1:
        # Deterministic runs: no seed noise at all, so any difference is real; the t statistic is undefined.
        difference = a[0] - b[0]
        return Comparison(len(a), len(b), difference, difference, difference, None,
                          DIFFERS if difference != 0 else NOISE)
    with warnings.catch_warnings():
        # A constant side's variance is ~0, which is right; scipy warns about its rounding anyway.
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        result = sps.ttest_ind(a, b, equal_var=False)
        ci = result.confidence_interval(confidence_level=confidence)
    low, high = float(ci.low), float(ci.high)
    return Comparison(len(a), len(b), difference, low, high, float(result.pvalue),
                      DIFFERS if low > 0 or high < 0 else NOISE)
