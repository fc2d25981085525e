"""Telling a real effect from seed noise: per-variant summaries, t-test comparisons, equivalence
(TOST) and multiple-comparison adjustment (results.power says how many seeds a difference needs).

Every variant is trained under several seeds, so a single difference in means says little: it only
counts when its confidence interval excludes zero. TOST, Holm and the one-sided tests are
statsmodels' (thin wrappers keep droplab's checks and messages); the intervals are scipy's.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from statsmodels.stats import weightstats
from statsmodels.stats.multitest import multipletests

from droplab.errors import DroplabError

CONFIDENCE = 0.95  # every interval over seeds, unless a test says otherwise (TOST: 90%)
DIFFERS = "differs"
NOISE = "not distinguishable from seed noise at this number of seeds"
TOO_FEW = "inconclusive: needs at least 2 seeds of each"
EQUIVALENT = "within ±tolerance"
NOT_EQUIVALENT = "outside ±tolerance"
UNDECIDED = "undecided: the interval reaches across ±tolerance"
# The three designs: against a number, seed by seed (the same seed's luck cancels), or Welch's t.
ONE_SAMPLE, PAIRED, WELCH = "one-sample", "paired", "Welch"
Other = Sequence[float] | float  # the other side of a comparison: a variant's seeds, or a number


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
    """mean(a) - mean(b) with its CI (Welch, paired or one-sample: then n_b = 0); CI and p are None
    when either side has fewer than 2 seeds."""

    n_a: int
    n_b: int
    difference: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str


@dataclass(frozen=True)
class Equivalence:
    """TOST of mean(a) - mean(b) against ±tolerance: p is the larger one-sided p, the CI the 90% one."""

    difference: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str


def level(confidence: float, name: str = "confidence") -> float:
    """A confidence level, alpha or power, checked to lie strictly between 0 and 1."""
    if not 0 < confidence < 1:
        raise StatsError(f"{name} {confidence!r}: expected a number strictly between 0 and 1")
    return confidence


def finite(value: float, name: str) -> float:
    """`value` as a float, or a StatsError naming `name` (not a number, or not finite)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise StatsError(f"{name} {value!r}: expected a number") from None
    if not math.isfinite(value):
        raise StatsError(f"{name} {value!r}: expected a finite number")
    return value


def seed_values(values: Sequence[float]) -> list[float]:
    """One finite float per seed, at least one; a diverged run's NaN is named, not averaged."""
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


def _checked(values: Sequence[float], confidence: float) -> list[float]:
    level(confidence)
    return seed_values(values)


def seed_differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """a[i] - b[i], seed by seed; unequal lengths mean some seed has no partner."""
    a, b = seed_values(a), seed_values(b)
    if len(a) != len(b):
        raise StatsError(f"paired values: a has {len(a)} seeds, b has {len(b)}; expected the same seeds on both")
    return [x - y for x, y in zip(a, b, strict=True)]


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean, sample SD and Student-t CI of the mean over seeds."""
    values = _checked(values, confidence)
    n, mean = len(values), statistics.fmean(values)
    if n == 1:
        return Summary(n, mean, None, None, None)
    sd = statistics.stdev(values)  # exact arithmetic: identical seeds give exactly 0, not rounding noise
    half = sps.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)


@contextmanager
def _rounding_tolerated() -> Iterator[None]:
    """Values equal up to rounding have a variance of ~0, which is right; scipy warns about it anyway."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        yield


def _deterministic(n_a: int, n_b: int, difference: float) -> Comparison:
    # No seed noise at all, so any difference is real; the t statistic is undefined.
    return Comparison(n_a, n_b, difference, difference, difference, None, DIFFERS if difference != 0 else NOISE)


def _tested(n_a: int, n_b: int, difference: float, result, confidence: float, offset: float = 0.0) -> Comparison:
    """A scipy t-test result as a Comparison; offset moves a one-sample CI of the mean to one of mean - value."""
    ci = result.confidence_interval(confidence_level=confidence)
    low, high = float(ci.low) - offset, float(ci.high) - offset
    return Comparison(n_a, n_b, difference, low, high, float(result.pvalue),
                      DIFFERS if low > 0 or high < 0 else NOISE)


def compare(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """Welch's t-test of a against b: DIFFERS iff the CI of mean(a) - mean(b) excludes 0."""
    a, b = _checked(a, confidence), _checked(b, confidence)
    difference = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Comparison(len(a), len(b), difference, None, None, None, TOO_FEW)
    if len(set(a)) == 1 and len(set(b)) == 1:
        return _deterministic(len(a), len(b), a[0] - b[0])
    with _rounding_tolerated():
        return _tested(len(a), len(b), difference, sps.ttest_ind(a, b, equal_var=False), confidence)


def compare_paired(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """Paired t-test (a[i] and b[i] share seed i): the seed's own luck cancels in a[i] - b[i]."""
    level(confidence)
    differences = seed_differences(a, b)
    n, difference = len(differences), statistics.fmean(differences)
    if n < 2:
        return Comparison(n, n, difference, None, None, None, TOO_FEW)
    if len(set(differences)) == 1:
        return _deterministic(n, n, differences[0])
    with _rounding_tolerated():
        return _tested(n, n, difference, sps.ttest_rel(a, b), confidence)


def compare_to(a: Sequence[float], value: float, confidence: float = CONFIDENCE) -> Comparison:
    """One-sample t-test of mean(a) - value, for claims against a number rather than a variant."""
    a, value = _checked(a, confidence), finite(value, "value")
    difference = statistics.fmean(a) - value
    if len(a) < 2:
        return Comparison(len(a), 0, difference, None, None, None, TOO_FEW)
    if len(set(a)) == 1:
        return _deterministic(len(a), 0, a[0] - value)
    with _rounding_tolerated():
        return _tested(len(a), 0, difference, sps.ttest_1samp(a, value), confidence, value)


def choose_test(b: Other, paired: bool) -> str:
    """The one choice of test for every comparison: one-sample against a number, paired when the
    claim pairs the seeds, Welch's t otherwise."""
    if isinstance(b, int | float):
        return ONE_SAMPLE
    return PAIRED if paired else WELCH


def compare_with(a: Sequence[float], b: Other, paired: bool, confidence: float = CONFIDENCE) -> Comparison:
    """mean(a) - mean(b) (or - b, a number) by the test choose_test chooses."""
    if isinstance(b, int | float):
        return compare_to(a, b, confidence)
    return (compare_paired if paired else compare)(a, b, confidence)


def _one_sided_p(a: list[float], b: Other, paired: bool, bound: float, alternative: str) -> float:
    """p of the one-sided test that mean(a) - mean(b) (or - b) is above `bound` ("larger") or below
    it ("smaller"): statsmodels tests a shifted null directly."""
    kind = choose_test(b, paired)
    with _rounding_tolerated():
        if kind == ONE_SAMPLE:
            return float(weightstats.DescrStatsW(np.asarray(a)).ttest_mean(float(b) + bound, alternative)[1])
        if kind == PAIRED:
            return float(weightstats.DescrStatsW(np.asarray(seed_differences(a, b))).ttest_mean(bound, alternative)[1])
        return float(weightstats.ttest_ind(np.asarray(a), np.asarray(seed_values(b)), alternative, "unequal",
                                           value=bound)[1])


def _tost_p(a: list[float], b: Other, paired: bool, tolerance: float) -> float:
    """statsmodels' TOST p (the larger one-sided p) of |mean(a) - mean(b)| < tolerance."""
    kind = choose_test(b, paired)
    with _rounding_tolerated():
        if kind == ONE_SAMPLE:
            low, high = float(b) - tolerance, float(b) + tolerance  # type: ignore[arg-type]
            return float(weightstats.DescrStatsW(np.asarray(a)).ttost_mean(low, high)[0])
        if kind == PAIRED:
            return float(weightstats.ttost_paired(np.asarray(a), np.asarray(seed_values(b)), -tolerance, tolerance)[0])
        return float(weightstats.ttost_ind(np.asarray(a), np.asarray(seed_values(b)), -tolerance, tolerance,
                                           usevar="unequal")[0])


def equivalence(a: Sequence[float], b: Other, tolerance: float, paired: bool = False,
                confidence: float = 0.90) -> Equivalence:
    """TOST: "a ~ b" needs evidence that |difference| < tolerance, not merely a failure to find one.

    Both one-sided tests at level (1 - confidence) / 2 pass exactly when the `confidence` interval
    (Welch; paired by seed; or one-sample when b is a number) lies inside ±tolerance."""
    tolerance = finite(tolerance, "tolerance")
    if tolerance <= 0:
        raise StatsError(f"tolerance {tolerance!r}: expected a number > 0")
    comparison = compare_with(a, b, paired, confidence)
    low, high = comparison.ci_low, comparison.ci_high
    if low is None or high is None:
        return Equivalence(comparison.difference, None, None, None, UNDECIDED)
    if -tolerance <= low and high <= tolerance:
        verdict = EQUIVALENT
    else:
        verdict = NOT_EQUIVALENT if low > tolerance or high < -tolerance else UNDECIDED
    p_value = None
    if comparison.p_value is not None:  # None: no seed noise, so the interval alone decides
        p_value = _tost_p(seed_values(a), b, paired, tolerance)
    return Equivalence(comparison.difference, low, high, p_value, verdict)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (statsmodels' multipletests), in input order: several
    comparisons from one set of runs would otherwise find a "difference" by chance. None (no
    test) stays None and is not counted."""
    tested = [(i, p) for i, p in enumerate(p_values) if p is not None]
    for _, p in tested:
        if not 0 <= p <= 1:
            raise StatsError(f"p-value {p!r}: expected a number between 0 and 1")
    adjusted: list[float | None] = [None] * len(p_values)
    if tested:
        corrected = multipletests([p for _, p in tested], method="holm")[1]
        for (i, _), p in zip(tested, corrected, strict=True):
            adjusted[i] = float(p)
    return adjusted


def prob_superiority(a: Sequence[float], b: Other, paired: bool) -> float:
    """P(A > B) over seeds (Bouthillier et al., MLSys 2021), ties counting half: seed by seed when
    paired, over every pair of seeds otherwise, against the number when b is one."""
    a = seed_values(a)
    if isinstance(b, int | float):
        pairs = [(x, float(b)) for x in a]
    elif paired:
        pairs = list(zip(a, seed_values(b), strict=True)) if len(a) == len(b) else []
        if not pairs:
            raise StatsError(f"paired values: a has {len(a)} seeds, b has {len(b)}; expected the same seeds on both")
    else:
        pairs = [(x, y) for x in a for y in seed_values(b)]
    return statistics.fmean(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in pairs)


def beyond_tolerance_p(a: Sequence[float], b: Other, tolerance: float, paired: bool) -> float | None:
    """p of the one-sided test that the difference lies beyond +-tolerance on the side of its
    estimate: what makes "a ~ b" contradicted (the 90% interval entirely outside)."""
    a = seed_values(a)
    if isinstance(b, int | float):
        difference = statistics.fmean(a) - float(b)
    else:
        difference = statistics.fmean(a) - statistics.fmean(seed_values(b))
    if len(a) < 2 or (not isinstance(b, int | float) and len(b) < 2):
        return None
    if difference >= 0:  # H0: difference <= +tolerance
        return _one_sided_p(a, b, paired, tolerance, "larger")
    return _one_sided_p(a, b, paired, -tolerance, "smaller")  # H0: difference >= -tolerance
