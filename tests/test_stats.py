"""stats: checked against by-hand formulas, planted effects and seed noise, not against scipy calling itself."""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps
from scipy.stats import t as student_t

from droplab.errors import DroplabError
from droplab.results.power import (
    detectable_difference,
    paired_sd,
    pooled_sd,
    seeds_needed,
    tost_power,
    tost_seeds_for_power,
)
from droplab.results.stats import (
    DIFFERS,
    EQUIVALENT,
    NOISE,
    NOT_EQUIVALENT,
    ONE_SAMPLE,
    PAIRED,
    TOO_FEW,
    UNDECIDED,
    WELCH,
    StatsError,
    beyond_tolerance_p,
    choose_test,
    compare,
    compare_paired,
    compare_to,
    compare_with,
    equivalence,
    holm,
    prob_superiority,
    summarize,
)

from synthetic import draws

# --- summarize -----------------------------------------------------------------------------------


def test_summarize_matches_hand_computation() -> None:
    s = summarize([0.80, 0.82, 0.84])
    half = 4.302652729749464 * 0.02 / math.sqrt(3)  # t_{0.975, 2} from tables
    assert (s.n, s.mean, s.sd) == (3, pytest.approx(0.82), pytest.approx(0.02))
    assert s.ci_low == pytest.approx(0.82 - half) and s.ci_high == pytest.approx(0.82 + half)


def test_summarize_other_confidence_uses_its_own_quantile() -> None:
    s = summarize([0.80, 0.82, 0.84], confidence=0.90)
    assert s.ci_high - s.mean == pytest.approx(2.919985580355516 * 0.02 / math.sqrt(3))  # t_{0.95, 2}


def test_summarize_one_seed_has_no_spread() -> None:
    assert summarize([0.5]) == summarize([0.5], 0.99)
    s = summarize([0.5])
    assert (s.n, s.mean, s.sd, s.ci_low, s.ci_high) == (1, 0.5, None, None, None)


def test_summarize_identical_seeds_have_exactly_zero_spread() -> None:
    s = summarize([0.1] * 7)
    assert (s.sd, s.ci_low, s.ci_high) == (0.0, 0.1, 0.1)


@pytest.mark.parametrize(
    ("values", "confidence", "message"),
    [
        ([], 0.95, "no values"),
        ([0.5, float("nan")], 0.95, "value nan: expected finite"),
        ([0.5, "x"], 0.95, "expected numbers"),
        ([0.5, 0.6], 1.0, "confidence 1.0: expected a number strictly between 0 and 1"),
    ],
)
def test_summarize_rejects_bad_input(values: list, confidence: float, message: str) -> None:
    with pytest.raises(StatsError, match=message) as info:
        summarize(values, confidence)
    assert isinstance(info.value, DroplabError)


# --- compare -------------------------------------------------------------------------------------


def welch_parts(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Welch-Satterthwaite written out: difference, its standard error and degrees of freedom."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    se2 = va / na + vb / nb
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return ma - mb, math.sqrt(se2), df


def welch_by_hand(a: list[float], b: list[float], confidence: float) -> tuple[float, float, float, float]:
    """Difference, CI and two-sided p from the Welch parts."""
    d, se, df = welch_parts(a, b)
    half = student_t.ppf((1 + confidence) / 2, df) * se
    return d, d - half, d + half, 2 * student_t.sf(abs(d) / se, df)


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_compare_is_welch(confidence: float) -> None:
    a, b = [0.71, 0.74, 0.70, 0.78], [0.69, 0.70, 0.705, 0.695, 0.70, 0.71]  # unequal n and variance
    d, low, high, p = welch_by_hand(a, b, confidence)
    c = compare(a, b, confidence)
    assert (c.n_a, c.n_b) == (4, 6)
    assert c.difference == pytest.approx(d)
    assert c.ci_low == pytest.approx(low) and c.ci_high == pytest.approx(high)
    assert c.p_value == pytest.approx(p)
    assert c.verdict == (DIFFERS if low > 0 or high < 0 else NOISE)


def test_compare_finds_a_planted_difference() -> None:
    c = compare(draws(0.85, 0.005, seed=1), draws(0.80, 0.005, seed=2))
    assert c.verdict == DIFFERS
    assert c.ci_low > 0 and c.p_value < 0.001
    assert c.ci_low < 0.05 < c.ci_high


def test_compare_sees_noise_between_draws_of_one_distribution() -> None:
    c = compare(draws(0.80, 0.01, seed=3), draws(0.80, 0.01, seed=4))
    assert c.verdict == NOISE
    assert c.ci_low < 0 < c.ci_high and c.p_value > 0.05


def test_compare_identical_variants_are_noise() -> None:
    values = draws(0.80, 0.01)
    c = compare(values, list(values))
    assert (c.difference, c.verdict) == (0.0, NOISE)
    assert c.p_value == pytest.approx(1.0)


def test_compare_needs_two_seeds_of_each() -> None:
    c = compare([0.9], [0.1, 0.2, 0.3])
    assert (c.n_a, c.n_b, c.ci_low, c.ci_high, c.p_value, c.verdict) == (1, 3, None, None, None, TOO_FEW)
    assert c.difference == pytest.approx(0.7)


@pytest.mark.parametrize(("b", "verdict"), [([0.2] * 4, DIFFERS), ([0.1] * 4, NOISE)])
def test_compare_deterministic_runs(b: list[float], verdict: str) -> None:
    c = compare([0.1] * 3, b)
    assert (c.ci_low, c.ci_high, c.p_value, c.verdict) == (c.difference, c.difference, None, verdict)
    assert c.difference == 0.1 - b[0]


def test_compare_one_deterministic_side_is_still_welch() -> None:
    a, b = [0.5] * 3, [0.1, 0.2, 0.3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's precision warning about the constant side is expected noise
        c = compare(a, b)
    _, low, high, p = welch_by_hand(a, b, 0.95)
    assert (c.ci_low, c.ci_high, c.p_value) == (pytest.approx(low), pytest.approx(high), pytest.approx(p))


# --- compare_paired and compare_to -----------------------------------------------------------------

# Seed by seed: differences 0.02, 0.03, 0.01, 0.04 -> mean 0.025, SD sqrt(0.0005 / 3).
PAIRED_A, PAIRED_B = [0.80, 0.83, 0.79, 0.85], [0.78, 0.80, 0.78, 0.81]
PAIRED_SD = math.sqrt(0.0005 / 3)


def test_compare_paired_matches_hand_computation() -> None:
    half = 3.182446305284263 * PAIRED_SD / math.sqrt(4)  # t_{0.975, 3} from tables
    c = compare_paired(PAIRED_A, PAIRED_B)
    assert (c.n_a, c.n_b) == (4, 4)
    assert c.difference == pytest.approx(0.025)
    assert c.ci_low == pytest.approx(0.025 - half) and c.ci_high == pytest.approx(0.025 + half)
    assert c.p_value == pytest.approx(2 * student_t.sf(0.025 / (PAIRED_SD / 2), 3))
    assert c.verdict == DIFFERS


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_compare_paired_matches_ttest_rel(confidence: float) -> None:
    a, b = draws(0.8, 0.02, n=6, seed=20), draws(0.79, 0.02, n=6, seed=21)
    reference = sps.ttest_rel(a, b)
    ci = reference.confidence_interval(confidence)
    c = compare_paired(a, b, confidence)
    assert (c.ci_low, c.ci_high, c.p_value) == (pytest.approx(ci.low), pytest.approx(ci.high),
                                                pytest.approx(reference.pvalue))


def test_pairing_removes_a_shared_seed_effect() -> None:
    seed_luck = np.random.default_rng(22).normal(0, 0.02, 6)  # the same data order and init in both
    a = list(0.80 + seed_luck + np.random.default_rng(23).normal(0, 0.001, 6))
    b = list(0.79 + seed_luck + np.random.default_rng(24).normal(0, 0.001, 6))
    assert compare_paired(a, b).verdict == DIFFERS
    assert compare(a, b).verdict == NOISE


def test_compare_paired_needs_equal_counts() -> None:
    with pytest.raises(StatsError, match="paired values: a has 3 seeds, b has 2"):
        compare_paired([0.1, 0.2, 0.3], [0.1, 0.2])


def test_compare_paired_one_pair_is_too_few() -> None:
    c = compare_paired([0.9], [0.5])
    assert (c.n_a, c.n_b, c.ci_low, c.ci_high, c.p_value, c.verdict) == (1, 1, None, None, None, TOO_FEW)
    assert c.difference == pytest.approx(0.4)


@pytest.mark.parametrize(("b", "verdict"), [([1.25, 2.25, 2.75], DIFFERS), ([1.5, 2.5, 3.0], NOISE)])
def test_compare_paired_identical_differences(b: list[float], verdict: str) -> None:
    c = compare_paired([1.5, 2.5, 3.0], b)  # binary-exact values: every difference is exactly the same
    assert (c.ci_low, c.ci_high, c.p_value, c.verdict) == (c.difference, c.difference, None, verdict)


def test_compare_to_matches_hand_computation() -> None:
    half = 4.302652729749464 * 0.02 / math.sqrt(3)  # t_{0.975, 2}
    c = compare_to([0.80, 0.82, 0.84], 0.75)
    assert (c.n_a, c.n_b) == (3, 0)
    assert c.difference == pytest.approx(0.07)
    assert c.ci_low == pytest.approx(0.07 - half) and c.ci_high == pytest.approx(0.07 + half)
    assert c.p_value == pytest.approx(2 * student_t.sf(0.07 / (0.02 / math.sqrt(3)), 2))
    assert c.verdict == DIFFERS


@pytest.mark.parametrize(("value", "verdict"), [(0.25, DIFFERS), (0.5, NOISE)])
def test_compare_to_deterministic(value: float, verdict: str) -> None:
    c = compare_to([0.5] * 3, value)
    assert (c.difference, c.ci_low, c.ci_high, c.p_value, c.verdict) == (0.5 - value, 0.5 - value, 0.5 - value,
                                                                         None, verdict)


def test_compare_to_edge_cases() -> None:
    assert compare_to([0.5], 0.1).verdict == TOO_FEW
    with pytest.raises(StatsError, match="value nan: expected a finite number"):
        compare_to([0.5, 0.6], float("nan"))


# --- equivalence (TOST) ----------------------------------------------------------------------------


def tost_by_hand(d: float, se: float, df: float, tolerance: float) -> tuple[float, float, float]:
    """90% interval and the larger of the two one-sided p-values."""
    half = student_t.ppf(0.95, df) * se
    p_above_minus = student_t.sf((d + tolerance) / se, df)  # H0: d <= -tolerance
    p_below_plus = student_t.sf((tolerance - d) / se, df)  # H0: d >= +tolerance
    return d - half, d + half, max(p_above_minus, p_below_plus)


REAL_A, REAL_B = [0.84, 0.86, 0.85, 0.87], [0.80, 0.81, 0.805, 0.80, 0.815]  # ~0.05 apart, unequal n
REGIONS = {"inside": EQUIVALENT, "straddles": UNDECIDED, "outside": NOT_EQUIVALENT}


def tolerance_for(region: str, low: float, high: float) -> float:
    assert low > 0.002  # a real positive difference, so the interval can lie beyond +tolerance
    return {"inside": high + 0.001, "straddles": (low + high) / 2, "outside": low - 0.001}[region]


@pytest.mark.parametrize("region", REGIONS)
def test_equivalence_is_tost_on_the_welch_interval(region: str) -> None:
    d, se, df = welch_parts(REAL_A, REAL_B)
    tolerance = tolerance_for(region, *tost_by_hand(d, se, df, 1.0)[:2])
    low, high, p = tost_by_hand(d, se, df, tolerance)
    e = equivalence(REAL_A, REAL_B, tolerance)
    assert e.difference == pytest.approx(d)
    assert (e.ci_low, e.ci_high, e.p_value) == (pytest.approx(low), pytest.approx(high), pytest.approx(p))
    assert e.verdict == REGIONS[region]
    assert (e.p_value < 0.05) == (region == "inside")  # the interval and the two tests agree


@pytest.mark.parametrize("region", REGIONS)
def test_equivalence_paired(region: str) -> None:
    se, df = PAIRED_SD / 2, 3
    tolerance = tolerance_for(region, *tost_by_hand(0.025, se, df, 1.0)[:2])
    low, high, p = tost_by_hand(0.025, se, df, tolerance)
    e = equivalence(PAIRED_A, PAIRED_B, tolerance, paired=True)
    assert (e.ci_low, e.ci_high, e.p_value) == (pytest.approx(low), pytest.approx(high), pytest.approx(p))
    assert e.verdict == REGIONS[region]


@pytest.mark.parametrize("region", REGIONS)
def test_equivalence_to_a_constant(region: str) -> None:
    se, df = 0.02 / math.sqrt(3), 2  # [0.80, 0.82, 0.84]: mean 0.82, SD 0.02; against 0.70
    tolerance = tolerance_for(region, *tost_by_hand(0.12, se, df, 1.0)[:2])
    low, high, p = tost_by_hand(0.12, se, df, tolerance)
    e = equivalence([0.80, 0.82, 0.84], 0.70, tolerance)
    assert e.difference == pytest.approx(0.12)
    assert (e.ci_low, e.ci_high, e.p_value) == (pytest.approx(low), pytest.approx(high), pytest.approx(p))
    assert e.verdict == REGIONS[region]


def test_equivalence_below_minus_tolerance_is_not_equivalent() -> None:
    assert equivalence(REAL_B, REAL_A, 0.01).verdict == NOT_EQUIVALENT


def test_equivalence_uses_the_90_percent_interval_by_default() -> None:
    d, se, df = welch_parts(REAL_A, REAL_B)
    tolerance = d + student_t.ppf(0.96, df) * se  # between the 90% and the 95% interval's upper ends
    assert equivalence(REAL_A, REAL_B, tolerance).verdict == EQUIVALENT
    assert equivalence(REAL_A, REAL_B, tolerance, confidence=0.95).verdict == UNDECIDED


@pytest.mark.parametrize(
    ("a", "b", "paired", "verdict"),
    [([0.5] * 3, [0.5] * 4, False, EQUIVALENT), ([0.75] * 3, [0.5] * 3, False, NOT_EQUIVALENT),
     ([1.5, 2.5, 3.0], [1.25, 2.25, 2.75], True, NOT_EQUIVALENT), ([1.5, 2.5], [1.4375, 2.4375], True, EQUIVALENT),
     ([0.5] * 3, 0.45, False, EQUIVALENT)],
)
def test_equivalence_without_seed_noise_is_decided_by_the_difference(a, b, paired: bool, verdict: str) -> None:
    e = equivalence(a, b, 0.1, paired=paired)
    assert (e.ci_low, e.ci_high, e.p_value, e.verdict) == (e.difference, e.difference, None, verdict)


def test_equivalence_one_seed_is_undecided() -> None:
    e = equivalence([0.5], [0.5, 0.6], 0.1)
    assert (e.ci_low, e.ci_high, e.p_value, e.verdict) == (None, None, None, UNDECIDED)


@pytest.mark.parametrize("tolerance", [0.0, -0.1, float("nan")])
def test_equivalence_rejects_a_bad_tolerance(tolerance: float) -> None:
    with pytest.raises(StatsError, match="tolerance"):
        equivalence(REAL_A, REAL_B, tolerance)


# --- holm ------------------------------------------------------------------------------------------


def test_holm_hand_worked() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06 for the last
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_skips_none_and_caps_at_one() -> None:
    adjusted = holm([0.01, None, 0.04, 0.03, 0.005])
    assert adjusted[1] is None
    assert [adjusted[i] for i in (0, 2, 3, 4)] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.4, 0.6, 0.5]) == [1.0, 1.0, 1.0]  # 1.2, 1.0, 0.6 before the cap and the running max
    assert holm([None, None]) == [None, None] and holm([]) == []
    assert holm([0.02]) == [0.02]


def test_holm_rejects_a_non_probability() -> None:
    with pytest.raises(StatsError, match="p-value 1.5: expected a number between 0 and 1"):
        holm([0.1, 1.5])


# --- pooled and paired SDs -------------------------------------------------------------------------


def test_pooled_sd_and_paired_sd() -> None:
    assert pooled_sd([1, 2, 3], [2, 4]) == pytest.approx(math.sqrt((1 + 2) / 2))  # variances 1 and 2
    assert pooled_sd([1], [2, 4]) is None
    assert paired_sd([1, 2, 4], [0, 0, 0]) == pytest.approx(math.sqrt(7 / 3))
    assert paired_sd([1], [0]) is None
    with pytest.raises(StatsError, match="a has 2 seeds, b has 1"):
        paired_sd([1, 2], [0])


# --- power: detectable difference, seeds needed ----------------------------------------------------


def power_by_hand(delta: float, se: float, df: int, alpha: float = 0.05) -> float:
    """Two-sided t-test power under the noncentral t."""
    critical = student_t.ppf(1 - alpha / 2, df)
    return sps.nct.sf(critical, df, delta / se) + sps.nct.cdf(-critical, df, delta / se)


@pytest.mark.parametrize(
    ("sd", "n_a", "n_b", "paired", "se", "df"),
    [(0.01, 5, 5, False, 0.01 * math.sqrt(2 / 5), 8),
     (0.01, 4, 7, False, 0.01 * math.sqrt(1 / 4 + 1 / 7), 9),
     (0.02, 6, None, True, 0.02 / math.sqrt(6), 5),
     (0.02, 6, 99, True, 0.02 / math.sqrt(6), 5)],  # paired ignores n_b
)
def test_detectable_difference_has_the_asked_power(sd, n_a, n_b, paired, se, df) -> None:
    delta = detectable_difference(sd, n_a, n_b, paired)
    assert power_by_hand(delta, se, df) == pytest.approx(0.80, abs=1e-8)


def test_detectable_difference_other_alpha_and_power() -> None:
    delta = detectable_difference(0.01, 5, 5, alpha=0.01, power=0.9)
    assert power_by_hand(delta, 0.01 * math.sqrt(2 / 5), 8, alpha=0.01) == pytest.approx(0.9, abs=1e-8)
    assert delta > detectable_difference(0.01, 5, 5)


def test_detectable_difference_by_simulation() -> None:
    sd, n, experiments = 1.0, 5, 20000
    delta = detectable_difference(sd, n, n)
    rng = np.random.default_rng(0)
    a, b = rng.normal(delta, sd, (experiments, n)), rng.normal(0.0, sd, (experiments, n))
    pooled = np.sqrt((a.var(axis=1, ddof=1) + b.var(axis=1, ddof=1)) / 2)
    t = (a.mean(axis=1) - b.mean(axis=1)) / (pooled * math.sqrt(2 / n))
    assert np.mean(np.abs(t) > student_t.ppf(0.975, 2 * n - 2)) == pytest.approx(0.80, abs=0.02)


def test_detectable_difference_paired_by_simulation() -> None:
    sd, n, experiments = 1.0, 6, 20000
    delta = detectable_difference(sd, n, paired=True)
    differences = np.random.default_rng(0).normal(delta, sd, (experiments, n))
    t = differences.mean(axis=1) / (differences.std(axis=1, ddof=1) / math.sqrt(n))
    assert np.mean(np.abs(t) > student_t.ppf(0.975, n - 1)) == pytest.approx(0.80, abs=0.02)


def test_detectable_difference_approaches_the_normal_formula() -> None:
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.80)
    assert detectable_difference(1.0, 2000, 2000) == pytest.approx(z * math.sqrt(2 / 2000), rel=1e-3)


def test_detectable_difference_edge_cases() -> None:
    assert detectable_difference(None, 5, 5) is None
    assert detectable_difference(0.01, 1, paired=True) is None  # df 0
    assert detectable_difference(0.01, 1, 1) is None
    assert detectable_difference(0.0, 3, 3) == 0.0
    assert detectable_difference(0.01, 1, 2) > 0  # df 1 still has an answer
    for bad, message in [({"sd": -1.0}, "sd -1.0: expected a number >= 0"),
                         ({"power": 0.04}, "power 0.04: expected more than alpha 0.05"),
                         ({"n_a": 0}, "seed count 0: expected a whole number >= 1")]:
        with pytest.raises(StatsError, match=message):
            detectable_difference(**{"sd": 0.01, "n_a": 5, **bad})


@pytest.mark.parametrize(("sd", "difference", "paired"), [(0.01, 0.005, False), (0.01, -0.005, False),
                                                          (0.02, 0.01, True)])
def test_seeds_needed_is_the_first_count_that_detects(sd: float, difference: float, paired: bool) -> None:
    n = seeds_needed(sd, difference, paired)
    assert n > 3
    assert detectable_difference(sd, n, n, paired) <= abs(difference)
    assert detectable_difference(sd, n - 1, n - 1, paired) > abs(difference)


def test_seeds_needed_edge_cases() -> None:
    assert seeds_needed(0.01, 0.0) is None
    assert seeds_needed(None, 0.1) is None
    assert seeds_needed(0.01, 1e-5, most=50) is None
    assert seeds_needed(0.0, 0.01) == 2
    assert seeds_needed(0.01, 1.0) == 2


def test_a_noisier_metric_needs_more_seeds() -> None:
    assert seeds_needed(0.02, 0.01) > seeds_needed(0.01, 0.01)
    assert statistics.fmean([detectable_difference(2.0, 5, 5) / detectable_difference(1.0, 5, 5)]) == \
        pytest.approx(2.0)


def test_compare_paired_differences_equal_up_to_rounding_are_a_real_difference() -> None:
    a, b = [0.80, 0.83, 0.91], [0.78, 0.81, 0.89]  # 0.02 each, but not to the last bit
    assert len({x - y for x, y in zip(a, b, strict=True)}) > 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = compare_paired(a, b)
    assert c.verdict == DIFFERS and c.ci_low == pytest.approx(0.02) and c.ci_high == pytest.approx(0.02)


# --- TOST power, P(A > B), the beyond-tolerance test ---------------------------------------------


def tost_passes_by_simulation(sd: float, n: int, true_difference: float, tolerance: float, paired: bool,
                              experiments: int = 20000, seed: int = 0) -> float:
    """The share of simulated experiments whose 90% interval lies inside ±tolerance (TOST at 0.05):
    paired on n seed-by-seed differences, unpaired on two groups of n with the pooled-variance t."""
    rng = np.random.default_rng(seed)
    if paired:
        differences = rng.normal(true_difference, sd, (experiments, n))
        estimate = differences.mean(axis=1)
        se, df = differences.std(axis=1, ddof=1) / math.sqrt(n), n - 1
    else:
        a, b = rng.normal(true_difference, sd, (experiments, n)), rng.normal(0.0, sd, (experiments, n))
        estimate = a.mean(axis=1) - b.mean(axis=1)
        pooled = np.sqrt((a.var(axis=1, ddof=1) + b.var(axis=1, ddof=1)) / 2)
        se, df = pooled * math.sqrt(2 / n), 2 * n - 2
    half = student_t.ppf(0.95, df) * se
    return float(np.mean((estimate - half >= -tolerance) & (estimate + half <= tolerance)))


def test_the_simulated_tost_is_the_one_equivalence_runs() -> None:
    """The paired simulation's pass rule agrees with equivalence() draw by draw, so it checks the real test."""
    rng = np.random.default_rng(1)
    for _ in range(40):
        differences = rng.normal(0.2, 1.0, 4)
        half = student_t.ppf(0.95, 3) * statistics.stdev(differences) / 2
        inside = -1.5 <= statistics.fmean(differences) - half and statistics.fmean(differences) + half <= 1.5
        assert (equivalence(list(differences), [0.0] * 4, 1.5, paired=True).verdict == EQUIVALENT) == inside


# tolerances (with sd 1) that leave each seed count's power well inside (0, 1)
TOST_CASES = [(2, 8.0), (3, 3.0), (5, 1.5), (10, 1.0)]


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("share", [0.0, 0.4])
@pytest.mark.parametrize(("n", "tolerance"), TOST_CASES)
def test_tost_power_matches_a_simulation(n: int, tolerance: float, share: float, paired: bool) -> None:
    power = tost_power(1.0, n, share * tolerance, tolerance, paired)
    assert 0.1 < power < 0.999  # a case where being wrong would show
    assert power == pytest.approx(tost_passes_by_simulation(1.0, n, share * tolerance, tolerance, paired), abs=0.02)


def test_tost_power_scales_with_the_sd_and_is_symmetric() -> None:
    assert tost_power(0.01, 5, 0.004, 0.015) == pytest.approx(tost_power(1.0, 5, 0.4, 1.5))
    assert tost_power(1.0, 5, -0.4, 1.5, False) == pytest.approx(tost_power(1.0, 5, 0.4, 1.5, False))
    assert tost_power(1.0, 5, 0.0, 1.5) > tost_power(1.0, 5, 0.6, 1.5) > tost_power(1.0, 5, 1.2, 1.5)


def test_tost_power_edge_cases() -> None:
    assert tost_power(None, 5, 0.0, 0.1) is None
    assert tost_power(0.01, 1, 0.0, 0.1) is None  # paired with one seed: no degree of freedom
    assert tost_power(0.01, 1, 0.0, 0.1, paired=False) is None
    assert tost_power(0.0, 3, 0.05, 0.1) == 1.0 and tost_power(0.0, 3, 0.1, 0.1) == 0.0  # no noise: the difference
    with pytest.raises(StatsError, match="seed count 0"):
        tost_power(0.01, 0, 0.0, 0.1)
    with pytest.raises(StatsError, match="alpha 1.5"):
        tost_power(0.01, 3, 0.0, 0.1, alpha=1.5)


@pytest.mark.parametrize(("sd", "true_difference", "tolerance", "paired"),
                         [(1.0, 0.0, 0.3, True), (1.0, 0.1, 0.3, True), (0.05, 0.0, 0.02, False),
                          (1.0, -0.1, 0.4, False)])
def test_tost_seeds_for_power_is_the_first_count_with_80_percent(sd, true_difference, tolerance, paired) -> None:
    n = tost_seeds_for_power(sd, true_difference, tolerance, paired)
    assert n > 3
    assert tost_power(sd, n, true_difference, tolerance, paired) >= 0.8 > tost_power(sd, n - 1, true_difference,
                                                                                      tolerance, paired)
    assert tost_passes_by_simulation(sd, n, true_difference, tolerance, paired, 5000) == pytest.approx(0.8, abs=0.05)


def test_tost_seeds_for_power_edge_cases() -> None:
    assert tost_seeds_for_power(None, 0.0, 0.1) is None
    assert tost_seeds_for_power(0.01, 0.1, 0.1) is None  # at the tolerance TOST never confirms
    assert tost_seeds_for_power(0.01, -0.2, 0.1) is None
    assert tost_seeds_for_power(1.0, 0.0, 0.1, most=20) is None
    assert tost_seeds_for_power(0.0, 0.0, 0.1) == 2


def test_tost_power_with_many_seeds_and_an_easy_tolerance() -> None:
    assert tost_power(1.0, 500, 0.0, 1.0) == pytest.approx(1.0)
    assert tost_seeds_for_power(1.0, 0.0, 1.0) == tost_seeds_for_power(1.0, 0.0, 1.0, most=50) == 11


def superiority_by_counting(a: list[float], b: list[float] | float, paired: bool) -> float:
    if isinstance(b, float):
        pairs = [(x, b) for x in a]
    else:
        pairs = list(zip(a, b, strict=True)) if paired else [(x, y) for x in a for y in b]
    wins = sum(x > y for x, y in pairs) + sum(x == y for x, y in pairs) / 2
    return wins / len(pairs)


@pytest.mark.parametrize(
    ("a", "b", "paired"),
    [([0.8, 0.9, 0.7], [0.75, 0.9, 0.95], False), ([0.8, 0.9, 0.7], [0.75, 0.9, 0.95], True),
     ([1.0, 1.0], [1.0, 1.0, 0.5], False), ([0.8, 0.9, 0.7, 0.85], 0.8, False),
     (draws(0.8, 0.02, n=7, seed=60), draws(0.79, 0.02, n=5, seed=61), False),
     (draws(0.8, 0.02, n=6, seed=62), draws(0.79, 0.02, n=6, seed=63), True)],
)
def test_prob_superiority_counts_wins_with_ties_as_half(a, b, paired: bool) -> None:
    assert prob_superiority(a, b, paired) == pytest.approx(superiority_by_counting(a, b, paired))


def test_prob_superiority_hand_worked() -> None:
    # over all 9 pairs: 0.8 beats 0.75; 0.9 beats 0.75 and ties 0.9; 0.7 beats none -> (1 + 1.5 + 0) / 9
    assert prob_superiority([0.8, 0.9, 0.7], [0.75, 0.9, 0.95], False) == pytest.approx(2.5 / 9)
    assert prob_superiority([0.8, 0.9, 0.7], [0.75, 0.9, 0.95], True) == pytest.approx(1.5 / 3)  # win, tie, loss
    assert prob_superiority([0.8, 0.9], 0.85, True) == 0.5  # against a number pairing means nothing
    with pytest.raises(StatsError, match="paired values: a has 3 seeds, b has 2"):
        prob_superiority([0.8, 0.9, 0.7], [0.8, 0.9], True)


BEYOND_A, BEYOND_B = [0.86, 0.88, 0.85, 0.89], [0.80, 0.81, 0.805, 0.80, 0.815]


@pytest.mark.parametrize("tolerance", [0.02, 0.05, 0.08])
def test_beyond_tolerance_p_unpaired_is_welch_one_sided(tolerance: float) -> None:
    d, se, df = welch_parts(BEYOND_A, BEYOND_B)
    assert beyond_tolerance_p(BEYOND_A, BEYOND_B, tolerance, False) == pytest.approx(student_t.sf((d - tolerance) / se,
                                                                                                 df))
    # the estimate below zero: the test is that the difference lies below -tolerance
    assert beyond_tolerance_p(BEYOND_B, BEYOND_A, tolerance, False) == pytest.approx(student_t.sf((d - tolerance) / se,
                                                                                                 df))
    shifted = sps.ttest_ind(BEYOND_A, [y + tolerance for y in BEYOND_B], equal_var=False, alternative="greater")
    assert beyond_tolerance_p(BEYOND_A, BEYOND_B, tolerance, False) == pytest.approx(shifted.pvalue)


def test_beyond_tolerance_p_paired_and_against_a_number() -> None:
    differences = [x - y for x, y in zip(PAIRED_A, PAIRED_B, strict=True)]  # mean +0.025
    expected = sps.ttest_1samp([x - 0.01 for x in differences], 0.0, alternative="greater").pvalue
    assert beyond_tolerance_p(PAIRED_A, PAIRED_B, 0.01, True) == pytest.approx(expected)
    assert beyond_tolerance_p(PAIRED_B, PAIRED_A, 0.01, True) == pytest.approx(expected)
    by_hand = student_t.cdf((0.82 - 0.90 + 0.05) / (0.02 / math.sqrt(3)), 2)  # mean 0.82 below 0.90 by more than 0.05?
    assert beyond_tolerance_p([0.80, 0.82, 0.84], 0.90, 0.05, False) == pytest.approx(by_hand)
    assert beyond_tolerance_p([0.80], 0.90, 0.05, False) is None


def test_beyond_tolerance_p_is_small_only_far_outside() -> None:
    assert beyond_tolerance_p(BEYOND_A, BEYOND_B, 0.02, False) < 0.05 < beyond_tolerance_p(BEYOND_A, BEYOND_B, 0.06,
                                                                                           False)


# --- statsmodels against the hand-written code it replaced -------------------------------------------
# Holm, TOST's p and the one-sided tests are statsmodels' since issue 25; each is checked here against
# the computation droplab did by hand before, written out with scipy alone.


def holm_by_hand(p_values: list[float]) -> list[float]:
    """Holm's step-down: the k-th smallest p times (m - k + 1), a running maximum, capped at 1."""
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, (p, i) in enumerate(sorted((p, i) for i, p in enumerate(p_values))):
        running = max(running, min(1.0, (len(p_values) - rank) * p))
        adjusted[i] = running
    return adjusted


def test_holm_is_the_hand_written_step_down() -> None:
    rng = np.random.default_rng(3)
    for size in range(1, 12):
        p_values = list(rng.uniform(0, 0.2, size)) + [0.01, 0.01]  # ties too
        assert holm(p_values) == pytest.approx(holm_by_hand(p_values), rel=1e-12)


def detectable_by_hand(sd: float, n_a: int, n_b: int | None, paired: bool, alpha: float, power: float) -> float:
    """The noncentrality at which the two-sided t-test has `power`, times the standard error."""
    se, df = (sd / math.sqrt(n_a), n_a - 1) if paired else (sd * math.sqrt(1 / n_a + 1 / (n_b or n_a)),
                                                             n_a + (n_b or n_a) - 2)
    critical = student_t.ppf(1 - alpha / 2, df)

    def shortfall(nc: float) -> float:  # the lower tail as its mirror image: nct.cdf turns NaN at large nc
        return sps.nct.sf(critical, df, nc) + sps.nct.sf(critical, df, -nc) - power

    return optimize.brentq(shortfall, 0.0, 1e3, xtol=1e-14) * se


@pytest.mark.parametrize("paired", [True, False])
def test_detectable_difference_is_the_root_at_few_seeds_too(paired: bool) -> None:
    """Where statsmodels' TTestPower / TTestIndPower.solve_power miss the root without a warning
    (2 and 3 seeds at alpha 0.01, power 0.9), which is why droplab keeps its own."""
    for n_a, n_b in [(2, 2), (3, 3), (3, 5), (5, 5), (10, 4), (30, 30)]:
        for alpha, power in [(0.05, 0.80), (0.01, 0.9)]:
            expected = detectable_by_hand(0.013, n_a, n_b, paired, alpha, power)
            assert detectable_difference(0.013, n_a, n_b, paired, alpha, power) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("tolerance", [0.005, 0.02, 0.05])
def test_tost_p_is_the_larger_hand_written_one_sided_p(tolerance: float) -> None:
    d, se, df = welch_parts(REAL_A, REAL_B)
    assert equivalence(REAL_A, REAL_B, tolerance).p_value == pytest.approx(tost_by_hand(d, se, df, tolerance)[2],
                                                                           rel=1e-9)
    differences = [x - y for x, y in zip(PAIRED_A, PAIRED_B, strict=True)]
    d, se = statistics.fmean(differences), statistics.stdev(differences) / math.sqrt(len(differences))
    assert equivalence(PAIRED_A, PAIRED_B, tolerance, paired=True).p_value == pytest.approx(
        tost_by_hand(d, se, len(differences) - 1, tolerance)[2], rel=1e-9)
    values = [0.80, 0.82, 0.84]
    d, se = statistics.fmean(values) - 0.81, statistics.stdev(values) / math.sqrt(3)
    assert equivalence(values, 0.81, tolerance).p_value == pytest.approx(tost_by_hand(d, se, 2, tolerance)[2],
                                                                         rel=1e-9)


def test_one_choice_of_test_for_every_comparison() -> None:
    """choose_test decides one-sample, paired or Welch; compare_with runs the test it names."""
    assert (choose_test(0.5, True), choose_test([0.5], True), choose_test([0.5], False)) == (ONE_SAMPLE, PAIRED, WELCH)
    assert compare_with(PAIRED_A, 0.7, paired=True) == compare_to(PAIRED_A, 0.7)
    assert compare_with(PAIRED_A, PAIRED_B, paired=True) == compare_paired(PAIRED_A, PAIRED_B)
    assert compare_with(REAL_A, REAL_B, paired=False) == compare(REAL_A, REAL_B)
