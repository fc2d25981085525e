"""Telling a real effect from seed noise: per-variant summaries, t-test comparisons, equivalence
(TOST), multiple-comparison adjustment, and how many seeds a difference needs.

Every variant is trained under several seeds, so a single difference in means says little: it only
counts when its confidence interval excludes zero. When it does not, the power functions say whether
the seeds could have seen it at all.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from scipy import integrate, optimize
from scipy import stats as sps

from droplab.errors import DroplabError

DIFFERS = "differs"
NOISE = "not distinguishable from seed noise at this number of seeds"
TOO_FEW = "inconclusive: needs at least 2 seeds of each"
EQUIVALENT = "within ±tolerance"
NOT_EQUIVALENT = "outside ±tolerance"
UNDECIDED = "undecided: the interval reaches across ±tolerance"


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


def _level(confidence: float, name: str = "confidence") -> float:
    if not 0 < confidence < 1:
        raise StatsError(f"{name} {confidence!r}: expected a number strictly between 0 and 1")
    return confidence


def _finite(value: float, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise StatsError(f"{name} {value!r}: expected a number") from None
    if not math.isfinite(value):
        raise StatsError(f"{name} {value!r}: expected a finite number")
    return value


def _values(values: Sequence[float]) -> list[float]:
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
    _level(confidence)
    return _values(values)


def _differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """a[i] - b[i], seed by seed; unequal lengths mean some seed has no partner."""
    a, b = _values(a), _values(b)
    if len(a) != len(b):
        raise StatsError(f"paired values: a has {len(a)} seeds, b has {len(b)}; expected the same seeds on both")
    return [x - y for x, y in zip(a, b, strict=True)]


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
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


def compare(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Comparison:
    """Welch's t-test of a against b: DIFFERS iff the CI of mean(a) - mean(b) excludes 0."""
    a, b = _checked(a, confidence), _checked(b, confidence)
    difference = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Comparison(len(a), len(b), difference, None, None, None, TOO_FEW)
    if len(set(a)) == 1 and len(set(b)) == 1:
        return _deterministic(len(a), len(b), a[0] - b[0])
    with _rounding_tolerated():
        return _tested(len(a), len(b), difference, sps.ttest_ind(a, b, equal_var=False), confidence)


def compare_paired(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Comparison:
    """Paired t-test (a[i] and b[i] share seed i): the seed's own luck cancels in a[i] - b[i]."""
    _level(confidence)
    differences = _differences(a, b)
    n, difference = len(differences), statistics.fmean(differences)
    if n < 2:
        return Comparison(n, n, difference, None, None, None, TOO_FEW)
    if len(set(differences)) == 1:
        return _deterministic(n, n, differences[0])
    with _rounding_tolerated():
        return _tested(n, n, difference, sps.ttest_rel(a, b), confidence)


def compare_to(a: Sequence[float], value: float, confidence: float = 0.95) -> Comparison:
    """One-sample t-test of mean(a) - value, for claims against a number rather than a variant."""
    a, value = _checked(a, confidence), _finite(value, "value")
    difference = statistics.fmean(a) - value
    if len(a) < 2:
        return Comparison(len(a), 0, difference, None, None, None, TOO_FEW)
    if len(set(a)) == 1:
        return _deterministic(len(a), 0, a[0] - value)
    with _rounding_tolerated():
        return _tested(len(a), 0, difference, sps.ttest_1samp(a, value), confidence, value)


def _one_sided_p(a: list[float], b: Sequence[float] | float, paired: bool, shift: float, alternative: str) -> float:
    """p of "mean(a) - mean(b) + shift" being > 0 or < 0 (alternative); scipy takes no shifted null,
    so the shift moves the data instead."""
    shifted = [x + shift for x in a]
    with _rounding_tolerated():
        if isinstance(b, int | float):
            return float(sps.ttest_1samp(shifted, float(b), alternative=alternative).pvalue)
        if paired:
            return float(sps.ttest_rel(shifted, b, alternative=alternative).pvalue)
        return float(sps.ttest_ind(shifted, b, equal_var=False, alternative=alternative).pvalue)


def equivalence(a: Sequence[float], b: Sequence[float] | float, tolerance: float, paired: bool = False,
                confidence: float = 0.90) -> Equivalence:
    """TOST: "a ~ b" needs evidence that |difference| < tolerance, not merely a failure to find one.

    Both one-sided tests at level (1 - confidence) / 2 pass exactly when the `confidence` interval
    (Welch; paired by seed; or one-sample when b is a number) lies inside ±tolerance."""
    tolerance = _finite(tolerance, "tolerance")
    if tolerance <= 0:
        raise StatsError(f"tolerance {tolerance!r}: expected a number > 0")
    if isinstance(b, int | float):
        comparison = compare_to(a, b, confidence)
    else:
        comparison = (compare_paired if paired else compare)(a, b, confidence)
    low, high = comparison.ci_low, comparison.ci_high
    if low is None or high is None:
        return Equivalence(comparison.difference, None, None, None, UNDECIDED)
    if -tolerance <= low and high <= tolerance:
        verdict = EQUIVALENT
    else:
        verdict = NOT_EQUIVALENT if low > tolerance or high < -tolerance else UNDECIDED
    p_value = None
    if comparison.p_value is not None:  # None: no seed noise, so the interval alone decides
        a = _values(a)
        p_value = max(_one_sided_p(a, b, paired, tolerance, "greater"),  # H0: difference <= -tolerance
                      _one_sided_p(a, b, paired, -tolerance, "less"))  # H0: difference >= +tolerance
    return Equivalence(comparison.difference, low, high, p_value, verdict)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in input order: several comparisons from one set of runs
    would otherwise find a "difference" by chance. None (no test) stays None and is not counted."""
    tested = [(p, i) for i, p in enumerate(p_values) if p is not None]
    for p, _ in tested:
        if not 0 <= p <= 1:
            raise StatsError(f"p-value {p!r}: expected a number between 0 and 1")
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(tested)):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def pooled_sd(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The seed SD of two variants together (root mean of their variances): the noise a Welch
    comparison of them faces; None without two seeds on each side."""
    a, b = _values(a), _values(b)
    if len(a) < 2 or len(b) < 2:
        return None
    return math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)


def paired_sd(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The SD of seed-by-seed differences: the noise a paired comparison faces; None with one pair."""
    differences = _differences(a, b)
    return statistics.stdev(differences) if len(differences) > 1 else None


def _design(sd: float, n_a: int, n_b: int | None, paired: bool) -> tuple[float, int]:
    """Standard error of the difference and its degrees of freedom: paired (or one-sample) uses n_a
    differences; unpaired uses both groups with the pooled SD (n_b defaults to n_a)."""
    if paired:
        return sd / math.sqrt(n_a), n_a - 1
    n_b = n_a if n_b is None else n_b
    return sd * math.sqrt(1 / n_a + 1 / n_b), n_a + n_b - 2


def _checked_sd(sd: float) -> float:
    sd = _finite(sd, "sd")
    if sd < 0:
        raise StatsError(f"sd {sd!r}: expected a number >= 0")
    return sd


def _counts(*counts: int | None) -> None:
    for count in counts:
        if count is not None and (not isinstance(count, int) or count < 1):
            raise StatsError(f"seed count {count!r}: expected a whole number >= 1")


def detectable_difference(sd: float | None, n_a: int, n_b: int | None = None, paired: bool = False,
                          alpha: float = 0.05, power: float = 0.80) -> float | None:
    """The smallest true difference a two-sided t-test at level alpha finds with the given power:
    what "not distinguishable from seed noise" rules out, and what it does not."""
    _counts(n_a, n_b)
    alpha, power = _level(alpha, "alpha"), _level(power, "power")
    if power <= alpha:
        raise StatsError(f"power {power!r}: expected more than alpha {alpha!r} (a zero difference has power alpha)")
    if sd is None:
        return None
    se, df = _design(_checked_sd(sd), n_a, n_b, paired)
    if df < 1:
        return None
    if sd == 0:
        return 0.0
    critical = sps.t.ppf(1 - alpha / 2, df)

    def shortfall(noncentrality: float) -> float:
        # P(T < -critical) written as its mirror image: scipy's nct.cdf there turns NaN at large noncentrality.
        rejects = sps.nct.sf(critical, df, noncentrality) + sps.nct.sf(critical, df, -noncentrality)
        return rejects - power

    high = critical + sps.norm.ppf(power) + 1.0
    while shortfall(high) < 0:
        high *= 2
    return optimize.brentq(shortfall, 0.0, high, xtol=1e-12) * se


def _smallest(enough: Callable[[int], bool], most: int) -> int | None:
    """The least n in [2, most] with enough(n), for an `enough` that stays true once true."""
    if most < 2 or not enough(most):
        return None
    low, high = 2, most
    while low < high:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle + 1
    return low


def seeds_needed(sd: float | None, difference: float, paired: bool = False, alpha: float = 0.05,
                 power: float = 0.80, most: int = 1000) -> int | None:
    """Seeds per variant at which `difference` becomes detectable: what deciding a claim would cost."""
    difference = abs(_finite(difference, "difference"))
    if sd is None or difference == 0:
        return None

    def enough(n: int) -> bool:
        return detectable_difference(sd, n, n, paired, alpha, power) <= difference

    return _smallest(enough, most)


def tost_power(sd: float | None, n: int, true_difference: float, tolerance: float, paired: bool = True,
               alpha: float = 0.05) -> float | None:
    """The chance that TOST at level alpha confirms "|difference| < tolerance" with n seeds (per
    variant) when the difference is really `true_difference` and the seed SD is `sd`. Exact:
    TOST passes when |estimate - 0| + t * (estimated se) <= tolerance, so the power integrates
    the normal chance of the estimate landing in that window over the chi-square law of the
    estimated se. Unpaired, it takes the pooled-variance t (2n - 2 degrees of freedom) as the
    approximation of Welch's. None without an SD or a degree of freedom."""
    _counts(n)
    _level(alpha, "alpha")
    tolerance, true_difference = _finite(tolerance, "tolerance"), _finite(true_difference, "true difference")
    if sd is None:
        return None
    se, df = _design(_checked_sd(sd), n, None, paired)
    if df < 1:
        return None
    if sd == 0:
        return 1.0 if abs(true_difference) < tolerance else 0.0
    critical = sps.t.ppf(1 - alpha, df)
    widest = df * (tolerance / (critical * se)) ** 2  # chi-square value past which the window is empty

    def window(quantile: float) -> float:
        # integrated over the chi-square's quantiles, so the integrand is smooth on [0, cdf(widest)]
        chi2 = float(sps.chi2.ppf(quantile, df))
        half = tolerance - critical * se * math.sqrt(chi2 / df)
        inside = sps.norm.cdf((half - true_difference) / se) - sps.norm.cdf((-half - true_difference) / se)
        return max(0.0, float(inside))

    return float(min(1.0, integrate.quad(window, 0.0, float(sps.chi2.cdf(widest, df)), limit=200)[0]))


def tost_seeds_for_power(sd: float | None, true_difference: float, tolerance: float, paired: bool = True,
                         alpha: float = 0.05, power: float = 0.80, most: int = 1000) -> int | None:
    """Seeds per variant at which TOST reaches `power` for `true_difference` (tost_power)."""
    if sd is None or abs(true_difference) >= tolerance:
        return None

    def enough(n: int) -> bool:
        return (tost_power(sd, n, true_difference, tolerance, paired, alpha) or 0.0) >= power

    return _smallest(enough, most)


def prob_superiority(a: Sequence[float], b: Sequence[float] | float, paired: bool) -> float:
    """P(A > B) over seeds (Bouthillier et al., MLSys 2021), ties counting half: seed by seed when
    paired, over every pair of seeds otherwise, against the number when b is one."""
    a = _values(a)
    if isinstance(b, int | float):
        pairs = [(x, float(b)) for x in a]
    elif paired:
        pairs = list(zip(a, _values(b), strict=True)) if len(a) == len(b) else []
        if not pairs:
            raise StatsError(f"paired values: a has {len(a)} seeds, b has {len(b)}; expected the same seeds on both")
    else:
        pairs = [(x, y) for x in a for y in _values(b)]
    return statistics.fmean(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in pairs)


def beyond_tolerance_p(a: Sequence[float], b: Sequence[float] | float, tolerance: float, paired: bool) -> float | None:
    """p of the one-sided test that the difference lies beyond +-tolerance on the side of its
    estimate: what makes "a ~ b" contradicted (the 90% interval entirely outside)."""
    a = _values(a)
    if isinstance(b, int | float):
        difference = statistics.fmean(a) - float(b)
    else:
        difference = statistics.fmean(a) - statistics.fmean(_values(b))
    if len(a) < 2 or (not isinstance(b, int | float) and len(b) < 2):
        return None
    if difference >= 0:  # H0: difference <= +tolerance
        return _one_sided_p(a, b, paired, -tolerance, "greater")
    return _one_sided_p(a, b, paired, tolerance, "less")  # H0: difference >= -tolerance


def equivalence_seeds_needed(sd: float | None, difference: float, tolerance: float, paired: bool = False,
                             confidence: float = 0.90, most: int = 1000) -> int | None:
    """Seeds per variant whose expected interval fits inside ±tolerance around `difference`: what
    confirming "a ~ b" would cost. None when the difference itself is at the tolerance or beyond."""
    difference, tolerance = abs(_finite(difference, "difference")), _finite(tolerance, "tolerance")
    _level(confidence)
    if sd is None or difference >= tolerance:
        return None
    sd = _checked_sd(sd)

    def enough(n: int) -> bool:
        se, df = _design(sd, n, n, paired)
        return df >= 1 and sps.t.ppf((1 + confidence) / 2, df) * se <= tolerance - difference

    return _smallest(enough, most)
