"""What seeds can see: the smallest difference a t-test detects, the seeds a difference needs,
and TOST's power, from the seed noise (SD) a comparison faces.

Both are computed here on the noncentral t and on TOST's exact law: statsmodels has no TOST
power, and its t-test power solver is wrong at the few seeds droplab runs (detectable_difference).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from scipy import integrate, optimize, special
from scipy import stats as sps

from droplab.results.stats import (
    ONE_SAMPLE,
    WELCH,
    Other,
    StatsError,
    choose_test,
    finite,
    level,
    seed_differences,
    seed_values,
)


def pooled_sd(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The seed SD of two variants together (root mean of their variances): the noise a Welch
    comparison of them faces; None without two seeds on each side."""
    a, b = seed_values(a), seed_values(b)
    if len(a) < 2 or len(b) < 2:
        return None
    return math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)


def paired_sd(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The SD of seed-by-seed differences: the noise a paired comparison faces; None with one pair."""
    differences = seed_differences(a, b)
    return statistics.stdev(differences) if len(differences) > 1 else None


def noise_sd(a: Sequence[float], b: Other, paired: bool) -> float | None:
    """The seed SD the test choose_test chooses faces: of a alone against a number, of the seed-by-seed
    differences when paired, pooled over both variants for Welch."""
    kind = choose_test(b, paired)
    if kind == ONE_SAMPLE:
        values = seed_values(a)
        return statistics.stdev(values) if len(values) > 1 else None
    return pooled_sd(a, b) if kind == WELCH else paired_sd(a, b)  # type: ignore[arg-type]


def _design(sd: float, n_a: int, n_b: int | None, paired: bool) -> tuple[float, int]:
    """Standard error of the difference and its degrees of freedom: paired (or one-sample) uses n_a
    differences; unpaired uses both groups with the pooled SD (n_b defaults to n_a)."""
    if paired:
        return sd / math.sqrt(n_a), n_a - 1
    n_b = n_a if n_b is None else n_b
    return sd * math.sqrt(1 / n_a + 1 / n_b), n_a + n_b - 2


def _checked_sd(sd: float) -> float:
    sd = finite(sd, "sd")
    if sd < 0:
        raise StatsError(f"sd {sd!r}: expected a number >= 0")
    return sd


def _noise(sd: float | None, n_a: int, n_b: int | None, paired: bool) -> tuple[float, float, int] | None:
    """The checked SD, the standard error of the difference and its degrees of freedom (_design);
    None without an SD or without a degree of freedom."""
    if sd is None:
        return None
    sd = _checked_sd(sd)
    se, df = _design(sd, n_a, n_b, paired)
    return None if df < 1 else (sd, se, df)


def _counts(*counts: int | None) -> None:
    for count in counts:
        if count is not None and (not isinstance(count, int) or count < 1):
            raise StatsError(f"seed count {count!r}: expected a whole number >= 1")


def detectable_difference(sd: float | None, n_a: int, n_b: int | None = None, paired: bool = False,
                          alpha: float = 0.05, power: float = 0.80) -> float | None:
    """The smallest true difference a two-sided t-test at level alpha finds with the given power:
    what "not distinguishable from seed noise" rules out, and what it does not."""
    _counts(n_a, n_b)
    alpha, power = level(alpha, "alpha"), level(power, "power")
    if power <= alpha:
        raise StatsError(f"power {power!r}: expected more than alpha {alpha!r} (a zero difference has power alpha)")
    noise = _noise(sd, n_a, n_b, paired)
    if noise is None:
        return None
    sd, se, df = noise
    if sd == 0:
        return 0.0
    # Hand-written: statsmodels 0.14.6's TTestPower/TTestIndPower.solve_power return a wrong root
    # without a warning at few degrees of freedom (3 paired seeds, alpha 0.01, power 0.9: 0.0545
    # sd instead of 0.1139; 2 paired seeds: its bound of 10 sd), and their power() is NaN at large
    # effects (effect 10 with 3 seeds), where this mirrors the lower tail (tests/test_stats.py).
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
    difference = abs(finite(difference, "difference"))
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
    level(alpha, "alpha")
    tolerance, true_difference = finite(tolerance, "tolerance"), finite(true_difference, "true difference")
    noise = _noise(sd, n, None, paired)
    if noise is None:
        return None
    sd, se, df = noise
    if sd == 0:
        return 1.0 if abs(true_difference) < tolerance else 0.0
    critical = sps.t.ppf(1 - alpha, df)
    widest = df * (tolerance / (critical * se)) ** 2  # chi-square value past which the window is empty

    def window(quantile: float) -> float:
        # integrated over the chi-square's quantiles, so the integrand is smooth on [0, cdf(widest)].
        # scipy.special's functions are what sps.chi2.ppf and sps.norm.cdf compute (the same bits),
        # without the distribution objects' argument checks: 50 times faster per call under quad.
        chi2 = 2.0 * float(special.gammaincinv(df / 2, quantile))
        half = tolerance - critical * se * math.sqrt(chi2 / df)
        inside = special.ndtr((half - true_difference) / se) - special.ndtr((-half - true_difference) / se)
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
