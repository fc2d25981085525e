"""judge: one claim against per-seed values, checked against scipy's tests and by-hand formulas on
planted effects: verdicts, the claim-level p-value, intervals, P(A > B) and the power of undecided steps."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats as sps
from scipy.stats import t as student_t

from droplab.results.claims import Claim, ClaimsError
from droplab.results.judge import ALPHA, NO_NOISE, judge
from droplab.results.power import tost_power
from droplab.results.stats import StatsError
from droplab.results.verdict_words import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_RUN

from synthetic import draws


def claim(expect: str, **extra: object) -> Claim:
    return Claim(id="c", study="S", says="says", **{"metric": "test.acc1", **extra}, expect=expect)


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


def welch_parts(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Welch-Satterthwaite written out: difference, standard error, degrees of freedom."""
    na, nb = len(a), len(b)
    va, vb = statistics.variance(a), statistics.variance(b)
    se2 = va / na + vb / nb
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return sum(a) / na - sum(b) / nb, math.sqrt(se2), df


def welch_p(a: list[float], b: list[float]) -> float:
    return float(sps.ttest_ind(a, b, equal_var=False).pvalue)


def welch_interval(where: str, a: list[float], b: list[float], confidence: float = 0.95) -> str:
    d, se, df = welch_parts(a, b)
    half = student_t.ppf((1 + confidence) / 2, df) * se
    return f"{where} = {d:+.4f}, {confidence:.0%} CI [{d - half:+.4f}, {d + half:+.4f}]"


def shifted(values: list[float], by: float) -> list[float]:
    return [x + by for x in values]


def power_by_hand(delta: float, se: float, df: float) -> float:
    """Two-sided t-test power at level ALPHA under the noncentral t."""
    critical = student_t.ppf(1 - ALPHA / 2, df)
    return sps.nct.sf(critical, df, delta / se) + sps.nct.cdf(-critical, df, delta / se)


HIGH, MID, LOW = draws(0.90, 0.005, seed=5), draws(0.80, 0.005, seed=6), draws(0.70, 0.005, seed=7)
NOISY_A, NOISY_B = draws(0.80, 0.05, seed=8), draws(0.80, 0.05, seed=9)
# MID moved up: a step whose Welch p against MID is significant alone but not after x3 (checked below)
BORDERLINE = shifted(MID, 0.014)
FAINT = shifted(MID, 0.003)  # well within MID's noise


def test_the_planted_borderline_steps_are_what_the_tests_below_need() -> None:
    assert ALPHA / 3 < welch_p(BORDERLINE, MID) < ALPHA
    assert welch_p(FAINT, MID) > 0.2


# --- chains, and the claim-level p-value -----------------------------------------------------------


def test_chain_confirmed_has_the_largest_step_p() -> None:
    """All steps must hold (intersection-union): the claim's p is its weakest step's."""
    result = judge(claim("a > b > c"), {"a": HIGH, "b": MID, "c": LOW, "unrelated": [0.0]})
    assert (result.verdict, result.direction) == (CONFIRMED, "confirm")
    assert result.p_value == pytest.approx(max(welch_p(HIGH, MID), welch_p(MID, LOW)))
    assert [step.where for step in result.steps] == ["a - b", "b - c"]
    assert [step.p_value for step in result.steps] == pytest.approx([welch_p(HIGH, MID), welch_p(MID, LOW)])
    assert result.numbers == f"{mean(HIGH):.4f} > {mean(MID):.4f} > {mean(LOW):.4f}"
    assert result.difference == f"{welch_interval('a - b', HIGH, MID)}; {welch_interval('b - c', MID, LOW)}"


def test_confirmed_chain_p_is_the_weak_step_not_the_strong_one() -> None:
    result = judge(claim("a > b > c"), {"a": BORDERLINE, "b": MID, "c": LOW})
    assert result.verdict == CONFIRMED
    assert result.p_value == pytest.approx(welch_p(BORDERLINE, MID)) and welch_p(MID, LOW) < result.p_value / 100
    undecided = judge(claim("a > b > c"), {"a": FAINT, "b": MID, "c": LOW})
    assert (undecided.verdict, undecided.direction) == (INCONCLUSIVE, "confirm")  # the right way, not shown
    assert undecided.p_value == pytest.approx(welch_p(FAINT, MID))


def test_a_contradicting_step_p_is_multiplied_by_the_step_count() -> None:
    """One wrong-way step among three: Bonferroni over the steps, so p < 0.05 alone is not enough."""
    values = {"a": HIGH, "b": MID, "c": BORDERLINE, "d": LOW}  # b > c goes the other way
    result = judge(claim("a > b > c > d"), values)
    assert result.direction == "contradict"
    assert result.p_value == pytest.approx(3 * welch_p(MID, BORDERLINE))
    assert result.verdict == INCONCLUSIVE  # 3 p > 0.05 > p
    assert [step.right_way for step in result.steps] == [True, False, True]
    strong = judge(claim("a > b > c > d"), {**values, "c": HIGH, "a": shifted(HIGH, 0.1)})
    assert (strong.verdict, strong.direction) == (CONTRADICTED, "contradict")
    assert strong.p_value == pytest.approx(3 * welch_p(MID, HIGH))


def test_the_strongest_wrong_way_step_decides_and_p_is_capped_at_one() -> None:
    two_wrong = judge(claim("a > b > c"), {"a": FAINT, "b": HIGH, "c": shifted(HIGH, 0.05)})
    assert two_wrong.p_value == pytest.approx(2 * min(welch_p(FAINT, HIGH), welch_p(HIGH, shifted(HIGH, 0.05))))
    assert two_wrong.verdict == CONTRADICTED
    faint_only = judge(claim("a > b"), {"a": MID, "b": FAINT})
    assert faint_only.p_value == pytest.approx(welch_p(MID, FAINT))
    capped = judge(claim("a > b > c"), {"a": HIGH, "b": MID, "c": FAINT})
    assert capped.p_value == pytest.approx(min(1.0, 2 * welch_p(MID, FAINT)))
    assert 2 * welch_p(MID, FAINT) > 1 and capped.p_value == 1.0


def test_chain_contradicted_by_one_step() -> None:
    result = judge(claim("a > b > c"), {"a": HIGH, "b": LOW, "c": MID})
    assert (result.verdict, result.direction) == (CONTRADICTED, "contradict")
    assert result.p_value == pytest.approx(2 * welch_p(LOW, MID))


def test_chain_inconclusive_within_noise() -> None:
    result = judge(claim("a > b > c"), {"a": HIGH, "b": NOISY_A, "c": NOISY_B})
    assert result.verdict == INCONCLUSIVE and result.p_value >= ALPHA
    assert result.steps[0].power is None and result.steps[1].power is not None  # only the undecided step
    assert result.power == f"{result.steps[1].where}: {result.steps[1].power}"  # names the step it is about


def test_less_than_chain_mirrors() -> None:
    greater = judge(claim("a > b > c"), {"a": HIGH, "b": MID, "c": LOW})
    less = judge(claim("c < b < a"), {"a": HIGH, "b": MID, "c": LOW})
    assert less.verdict == CONFIRMED and less.p_value == pytest.approx(greater.p_value)
    assert less.numbers == f"{mean(LOW):.4f} < {mean(MID):.4f} < {mean(HIGH):.4f}"
    wrong = judge(claim("a < b"), {"a": HIGH, "b": MID})
    assert (wrong.verdict, wrong.p_value) == (CONTRADICTED, pytest.approx(welch_p(HIGH, MID)))


# --- observed: the relation the means actually have ------------------------------------------------


@pytest.mark.parametrize(
    ("expect", "values", "expected"),
    [("a > b", {"a": MID, "b": HIGH}, f"{mean(MID):.4f} < {mean(HIGH):.4f}"),
     ("a < b", {"a": HIGH, "b": MID}, f"{mean(HIGH):.4f} > {mean(MID):.4f}"),
     ("a > b > c", {"a": HIGH, "b": LOW, "c": MID}, f"{mean(HIGH):.4f} > {mean(LOW):.4f} < {mean(MID):.4f}"),
     ("a ~ b", {"a": LOW, "b": MID}, f"{mean(LOW):.4f} < {mean(MID):.4f}"),
     ("a > b", {"a": [0.25, 0.75], "b": [0.5, 0.5]}, "0.5000 = 0.5000"),
     ("a > 0.9", {"a": [0.80, 0.82, 0.84]}, "0.8200 < 0.9000"),
     ("a ~ 0", {"a": [-0.01, -0.02]}, "-0.0150 < 0.0000")],
)
def test_observed_shows_the_relation_the_means_have(expect: str, values: dict, expected: str) -> None:
    assert judge(claim(expect), values).numbers == expected


# --- one seed, deterministic runs ------------------------------------------------------------------


def test_one_seed_has_no_interval_and_no_p() -> None:
    result = judge(claim("a > b"), {"a": [0.9], "b": MID})
    assert (result.verdict, result.direction, result.p_value) == (INCONCLUSIVE, None, None)
    assert result.difference == f"a - b: {0.9 - mean(MID):+.4f}, no interval with one seed"
    assert result.power == NO_NOISE
    assert (result.detectable, result.seeds_needed) == (None, None)
    assert result.numbers == f"0.9000 > {mean(MID):.4f}"


@pytest.mark.parametrize(("expect", "values"), [("a ~ b", {"a": [0.8], "b": [0.8, 0.81]}),
                                                ("a ~ b", {"a": [0.9], "b": [0.8, 0.81]}),
                                                ("a ~ 0.5", {"a": [0.9]}),
                                                ("a > 0.5", {"a": [0.9]})])
def test_one_seed_of_the_first_variant_is_never_decided(expect: str, values: dict) -> None:
    result = judge(claim(expect), values)
    assert (result.verdict, result.p_value, result.power) == (INCONCLUSIVE, None, NO_NOISE)


def test_one_seed_of_the_second_variant_has_no_p_either() -> None:
    result = judge(claim("a ~ b"), {"a": [0.90, 0.91, 0.92], "b": [0.8]})
    assert (result.verdict, result.p_value, result.direction) == (INCONCLUSIVE, None, None)


@pytest.mark.parametrize(
    ("expect", "a", "b", "verdict", "p_value"),
    [("a ~ b", [0.805] * 3, [0.8] * 3, CONFIRMED, 0.0), ("a ~ b", [0.9] * 3, [0.8] * 3, CONTRADICTED, 0.0),
     ("a > b", [0.81] * 2, [0.80] * 2, CONFIRMED, 0.0), ("a < b", [0.81] * 2, [0.80] * 2, CONTRADICTED, 0.0),
     ("a > b", [0.80] * 2, [0.80] * 2, INCONCLUSIVE, 1.0)],
)
def test_deterministic_runs_are_decided_by_the_difference_alone(expect, a, b, verdict: str, p_value: float) -> None:
    result = judge(claim(expect), {"a": a, "b": b})
    assert result.verdict == verdict
    assert result.p_value == pytest.approx(p_value, abs=1e-12)
    d = a[0] - b[0]
    level = "90%" if "~" in expect else "95%"
    assert result.difference == f"a - b = {d:+.4f}, {level} CI [{d:+.4f}, {d:+.4f}]"


# --- paired claims ---------------------------------------------------------------------------------

SEED_LUCK = np.random.default_rng(30).normal(0, 0.02, 6)  # shared by the two variants of one seed
TWIN_A = list(0.80 + SEED_LUCK + np.random.default_rng(31).normal(0, 0.002, 6))
TWIN_B = list(0.79 + SEED_LUCK + np.random.default_rng(32).normal(0, 0.002, 6))


def test_paired_claim_is_judged_by_ttest_rel() -> None:
    result = judge(claim("a > b", paired=True), {"a": TWIN_A, "b": TWIN_B})
    reference = sps.ttest_rel(TWIN_A, TWIN_B)
    ci = reference.confidence_interval(0.95)
    d = mean(TWIN_A) - mean(TWIN_B)
    assert result.difference == f"a - b = {d:+.4f}, paired 95% CI [{ci.low:+.4f}, {ci.high:+.4f}]"
    assert result.verdict == CONFIRMED and result.p_value == pytest.approx(reference.pvalue)
    wins = sum(x > y for x, y in zip(TWIN_A, TWIN_B, strict=True)) / 6
    assert result.superiority == f"{wins:.2f}"  # one step: the number alone
    unpaired = judge(claim("a > b"), {"a": TWIN_A, "b": TWIN_B})
    assert unpaired.verdict == INCONCLUSIVE  # the seed's luck swamps Welch
    assert unpaired.p_value == pytest.approx(welch_p(TWIN_A, TWIN_B))


def test_paired_claim_needs_equal_seed_counts() -> None:
    with pytest.raises(StatsError, match=r"claim 'c' \(test.acc1\): a - b: paired needs equal seed counts, "
                                         r"got 3 and 2"):
        judge(claim("a > b", paired=True), {"a": [0.8, 0.81, 0.82], "b": [0.7, 0.71]})


def tost_by_hand(differences: list[float], tolerance: float) -> tuple[float, float, float, float]:
    """One-sample TOST on seed-by-seed differences: mean, 90% interval, the larger one-sided p."""
    n, d = len(differences), mean(differences)
    se = statistics.stdev(differences) / math.sqrt(n)
    half = student_t.ppf(0.95, n - 1) * se
    p = max(student_t.sf((d + tolerance) / se, n - 1), student_t.sf((tolerance - d) / se, n - 1))
    return d, d - half, d + half, p


def test_paired_alike_and_alike_to_zero_are_tost_on_the_differences() -> None:
    differences = [x - y for x, y in zip(TWIN_A, TWIN_B, strict=True)]
    d, low, high, p = tost_by_hand(differences, 0.02)
    assert p < ALPHA
    result = judge(claim("a ~ b", paired=True, tolerance=0.02), {"a": TWIN_A, "b": TWIN_B})
    assert (result.verdict, result.direction, result.p_value) == (CONFIRMED, "confirm", pytest.approx(p))
    assert result.difference == f"a - b = {d:+.4f}, paired 90% CI [{low:+.4f}, {high:+.4f}]"
    to_zero = judge(claim("a ~ 0", tolerance=0.02), {"a": differences})
    assert (to_zero.verdict, to_zero.p_value) == (CONFIRMED, pytest.approx(p))
    assert to_zero.difference == f"a - 0 = {d:+.4f}, 90% CI [{low:+.4f}, {high:+.4f}]"


# --- '~' by TOST -----------------------------------------------------------------------------------

ALIKE_A, ALIKE_B = draws(0.80, 0.004, n=4, seed=33), draws(0.803, 0.004, n=6, seed=34)


def test_alike_uses_the_90_percent_tost_interval() -> None:
    d, se, df = welch_parts(ALIKE_A, ALIKE_B)
    low, high = d - student_t.ppf(0.95, df) * se, d + student_t.ppf(0.95, df) * se
    # a tolerance the 90% interval fits inside but the 95% one does not
    tolerance = max(-low, high, -d + student_t.ppf(0.96, df) * se, d + student_t.ppf(0.96, df) * se)
    assert tolerance < max(abs(d - student_t.ppf(0.975, df) * se), abs(d + student_t.ppf(0.975, df) * se))
    result = judge(claim("a ~ b", tolerance=tolerance), {"a": ALIKE_A, "b": ALIKE_B})
    assert result.verdict == CONFIRMED
    p = max(student_t.sf((d + tolerance) / se, df), student_t.sf((tolerance - d) / se, df))
    assert result.p_value == pytest.approx(p) and p < ALPHA
    assert result.difference == f"a - b = {d:+.4f}, 90% CI [{low:+.4f}, {high:+.4f}]"
    just_too_tight = judge(claim("a ~ b", tolerance=max(-low, high) * 0.99), {"a": ALIKE_A, "b": ALIKE_B})
    assert (just_too_tight.verdict, just_too_tight.direction) == (INCONCLUSIVE, "confirm")
    assert just_too_tight.p_value > ALPHA


def test_alike_contradicted_only_when_the_90_percent_interval_is_outside() -> None:
    d, se, df = welch_parts(HIGH, MID)
    low = d - student_t.ppf(0.95, df) * se
    outside = judge(claim("a ~ b", tolerance=low * 0.99), {"a": HIGH, "b": MID})
    assert (outside.verdict, outside.direction) == (CONTRADICTED, "contradict")
    assert outside.p_value == pytest.approx(student_t.sf((d - low * 0.99) / se, df))  # H0: d <= +tolerance
    straddling = judge(claim("a ~ b", tolerance=low * 1.01), {"a": HIGH, "b": MID})
    assert (straddling.verdict, straddling.direction) == (INCONCLUSIVE, "contradict")
    below = judge(claim("a ~ b", tolerance=low * 0.99), {"a": MID, "b": HIGH})  # the mirror: d below -tolerance
    assert below.verdict == CONTRADICTED and below.p_value == pytest.approx(outside.p_value)


# --- a number as the second term ------------------------------------------------------------------

THREE = [0.80, 0.82, 0.84]  # mean 0.82, SD 0.02


@pytest.mark.parametrize("expect", ["a > 0.75", "a < 0.75", "a > 0.81", "a < 0.9", "a > 0.9"])
def test_compare_with_a_number_is_a_one_sample_t_test(expect: str) -> None:
    result = judge(claim(expect), {"a": THREE})
    _, relation, number = expect.split()
    value = float(number)
    p = float(sps.ttest_1samp(THREE, value).pvalue)
    right_way = (0.82 > value) == (relation == ">")
    assert result.p_value == pytest.approx(p)
    assert result.verdict == (INCONCLUSIVE if p >= ALPHA else CONFIRMED if right_way else CONTRADICTED)
    half = student_t.ppf(0.975, 2) * 0.02 / math.sqrt(3)
    d = 0.82 - value
    assert result.difference == f"a - {value:g} = {d:+.4f}, 95% CI [{d - half:+.4f}, {d + half:+.4f}]"
    assert result.superiority == f"{sum(x > value for x in THREE) / 3:.2f}"


def test_the_verdicts_of_the_number_cases_are_all_represented() -> None:
    """The parametrized cases above reach every verdict, so a wrong rule would show."""
    verdicts = {judge(claim(e), {"a": THREE}).verdict for e in ["a > 0.75", "a < 0.75", "a > 0.81", "a < 0.9"]}
    assert verdicts == {CONFIRMED, CONTRADICTED, INCONCLUSIVE}


# --- layerwise BN metrics --------------------------------------------------------------------------

UP = {"layer1.0.bn1": draws(1.6, 0.01, seed=40), "layer1.0.bn2": draws(1.4, 0.01, seed=41)}
DOWN = {"layer1.0.bn1": draws(1.0, 0.01, seed=42), "layer1.0.bn2": draws(1.0, 0.01, seed=43),
        "layer4.1.bn2": draws(1.0, 0.01, seed=44)}  # a layer UP lacks: not judged
RATIO = "bn.dropout_variance_ratio"


def test_layerwise_claims_are_judged_layer_by_layer() -> None:
    result = judge(claim("a > b", metric=RATIO), {"a": UP, "b": DOWN})
    assert result.verdict == CONFIRMED
    assert [step.where for step in result.steps] == list(UP)
    assert result.p_value == pytest.approx(max(welch_p(UP[layer], DOWN[layer]) for layer in UP))
    assert result.difference == "; ".join(welch_interval(layer, UP[layer], DOWN[layer]) for layer in UP)
    means = [mean([mean(by_layer[layer]) for layer in UP]) for by_layer in (UP, DOWN)]
    assert result.numbers == f"{means[0]:.4f} > {means[1]:.4f} (mean over 2 BN layers)"
    assert result.superiority == ""  # per layer it would be a wall of numbers


def test_layerwise_one_contradicting_layer_contradicts() -> None:
    up = {**UP, "layer1.0.bn2": draws(0.9, 0.01, seed=45)}
    result = judge(claim("a > b", metric=RATIO), {"a": up, "b": DOWN})
    assert result.verdict == CONTRADICTED
    assert result.p_value == pytest.approx(2 * welch_p(up["layer1.0.bn2"], DOWN["layer1.0.bn2"]))


def test_layerwise_one_undecided_layer_is_inconclusive() -> None:
    noisy = draws(1.05, 0.1, seed=49)  # above DOWN's, but within its own noise
    up = {**UP, "layer1.0.bn2": noisy}
    result = judge(claim("a > b", metric=RATIO), {"a": up, "b": DOWN})
    assert (result.verdict, result.direction) == (INCONCLUSIVE, "confirm")
    assert result.p_value == pytest.approx(welch_p(noisy, DOWN["layer1.0.bn2"]))
    sd = math.sqrt((statistics.variance(noisy) + statistics.variance(DOWN["layer1.0.bn2"])) / 2)
    assert power_by_hand(result.detectable, sd * math.sqrt(2 / 5), 8) == pytest.approx(0.80, abs=1e-6)


def test_layerwise_with_many_layers_shows_the_weakest_one() -> None:
    layers = [f"layer{i}.0.bn1" for i in range(1, 6)]
    up = {layer: draws(1.5, 0.01, seed=70 + i) for i, layer in enumerate(layers)}
    down = {layer: draws(1.0, 0.01, seed=80 + i) for i, layer in enumerate(layers)}
    confirmed = judge(claim("a > b", metric=RATIO), {"a": up, "b": down})
    assert confirmed.verdict == CONFIRMED and len(confirmed.steps) == 5
    first = layers[0]
    assert confirmed.difference == (f"{welch_interval(first, up[first], down[first])}; "
                                    "4 more steps in report/stats.json")
    noisy = {**up, layers[3]: draws(1.02, 0.1, seed=90)}
    weak = judge(claim("a > b", metric=RATIO), {"a": noisy, "b": down})
    assert weak.verdict == INCONCLUSIVE
    assert weak.difference.startswith(welch_interval(layers[3], noisy[layers[3]], down[layers[3]]))


def test_layerwise_against_a_number_judges_every_layer_of_the_variant() -> None:
    ratios = {"layer1.0.bn1": draws(1.001, 0.005, seed=48), "layer2.0.bn1": draws(0.998, 0.005, seed=49)}
    result = judge(claim("a ~ 1", metric=RATIO, tolerance=0.05), {"a": ratios})
    assert result.verdict == CONFIRMED
    assert [step.where for step in result.steps] == list(ratios)
    expected = max(tost_by_hand([x - 1 for x in values], 0.05)[3] for values in ratios.values())
    assert result.p_value == pytest.approx(expected)
    off = {**ratios, "layer3.0.bn1": draws(1.2, 0.005, seed=50)}
    far = judge(claim("a ~ 1", metric=RATIO, tolerance=0.05), {"a": off})
    assert far.verdict == CONTRADICTED
    beyond = sps.ttest_1samp(off["layer3.0.bn1"], 1.05, alternative="greater").pvalue
    assert far.p_value == pytest.approx(3 * beyond)


def test_layerwise_without_a_common_layer_is_not_run() -> None:
    result = judge(claim("a > b", metric=RATIO), {"a": {"x.bn": [1.0, 1.1]}, "b": {"y.bn": [1.0, 1.1]}})
    assert (result.verdict, result.difference, result.p_value, result.steps) == (
        NOT_RUN, "no BN layer is common to a, b", None, [])
    assert result.numbers == "not run ? not run"


def test_layerwise_values_must_be_per_layer_and_scalar_ones_not() -> None:
    with pytest.raises(ClaimsError, match=r"claim 'c' \(bn.dropout_variance_ratio\): values for 'a': expected a "
                                          "mapping of BN layer -> one value per seed"):
        judge(claim("a > b", metric=RATIO), {"a": [1.0, 1.1], "b": DOWN})
    with pytest.raises(ClaimsError, match="values for 'a': expected one value per seed"):
        judge(claim("a > b", metric="bn.recal_gain"), {"a": UP, "b": [0.1, 0.2]})


def test_bad_values_name_the_claim() -> None:
    with pytest.raises(StatsError, match=r"claim 'c' \(test.acc1\): .*value inf"):
        judge(claim("a > b"), {"a": [0.5, float("inf")], "b": MID})
    with pytest.raises(StatsError, match=r"claim 'c' \(bn.dropout_variance_ratio\): .*value nan"):
        judge(claim("a > b", metric=RATIO), {"a": {"l": [1.0, float("nan")]}, "b": {"l": [1.0, 1.1]}})


# --- P(A > B) and the power of undecided steps -----------------------------------------------------


def test_superiority_counts_every_pair_of_seeds() -> None:
    result = judge(claim("a > b > c"), {"a": HIGH, "b": NOISY_A, "c": NOISY_B})
    share = [sum(x > y for x in a for y in b) / 25 for a, b in ((HIGH, NOISY_A), (NOISY_A, NOISY_B))]
    assert result.superiority == f"a - b: {share[0]:.2f}; b - c: {share[1]:.2f}"
    assert 0 < share[1] < 1  # a share that could be wrong


def test_undecided_difference_states_what_the_seeds_detect() -> None:
    result = judge(claim("b > a"), {"a": NOISY_A, "b": NOISY_B})
    assert result.verdict == INCONCLUSIVE
    sd = math.sqrt((statistics.variance(NOISY_A) + statistics.variance(NOISY_B)) / 2)
    assert power_by_hand(result.detectable, sd * math.sqrt(2 / 5), 8) == pytest.approx(0.80, abs=1e-6)
    d, needed = mean(NOISY_B) - mean(NOISY_A), result.seeds_needed
    assert power_by_hand(d, sd * math.sqrt(2 / needed), 2 * needed - 2) >= 0.80 > power_by_hand(
        d, sd * math.sqrt(2 / (needed - 1)), 2 * needed - 4)
    assert result.power == (f"with 5 seeds it would detect ≥ {result.detectable:.4f} with 80% power; "
                            f"the observed difference of {d:+.4f} needs ≈ {needed} seeds for 80% power")


def test_undecided_paired_and_one_sample_use_their_own_noise() -> None:
    a, b = [0.80, 0.83, 0.79], [0.806, 0.816, 0.776]  # differences -0.006, +0.014, +0.014
    paired = judge(claim("a > b", paired=True), {"a": a, "b": b})
    assert paired.verdict == INCONCLUSIVE
    sd = statistics.stdev([x - y for x, y in zip(a, b, strict=True)])
    assert power_by_hand(paired.detectable, sd / math.sqrt(3), 2) == pytest.approx(0.80, abs=1e-6)
    one_sample = judge(claim("a > 0.81"), {"a": THREE})
    assert power_by_hand(one_sample.detectable, 0.02 / math.sqrt(3), 2) == pytest.approx(0.80, abs=1e-6)


def test_undecided_without_any_difference_or_with_a_tiny_one() -> None:
    none = judge(claim("a > b"), {"a": [0.8] * 2, "b": [0.8] * 2})
    assert none.power.endswith("; no seed count would decide a difference of 0")
    assert (none.detectable, none.seeds_needed) == (0.0, None)
    tiny = judge(claim("a > b"), {"a": [0.7, 0.9, 0.8], "b": [0.69999, 0.9, 0.8]})
    assert tiny.power.endswith("needs more than 1000 seeds") and tiny.seeds_needed is None


def first_count_with_tost_power(sd: float, tolerance: float, most: int = 200) -> int:
    """Scan the seed counts one by one (tost_power itself is checked against a simulation in test_stats)."""
    return next(n for n in range(2, most) if tost_power(sd, n, 0.0, tolerance, False) >= 0.80)


def test_undecided_alike_states_tost_power() -> None:
    a, b = draws(0.80, 0.05, seed=59), draws(0.80, 0.05, seed=79)
    result = judge(claim("a ~ b", tolerance=0.03), {"a": a, "b": b})
    d = mean(a) - mean(b)
    assert result.verdict == INCONCLUSIVE and abs(d) < 0.03
    sd = math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)
    at_zero, at_observed = tost_power(sd, 5, 0.0, 0.03, False), tost_power(sd, 5, d, 0.03, False)
    needed = first_count_with_tost_power(sd, 0.03)
    assert result.seeds_needed == needed
    assert result.power == (f"with 5 seeds, TOST at ±0.03 confirms a true difference of 0 with {at_zero:.0%} "
                            f"power (80% at ≈ {needed} seeds), and the observed {d:+.4f} with {at_observed:.0%}")
    assert result.detectable is None


def test_undecided_alike_with_an_easy_tolerance_states_the_seeds_it_needs() -> None:
    a, b = draws(0.80, 0.02, seed=51), draws(0.80, 0.02, seed=52)
    result = judge(claim("a ~ b", tolerance=0.015), {"a": a, "b": b})
    sd = math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)
    assert result.seeds_needed == first_count_with_tost_power(sd, 0.015)


def test_decided_claims_carry_no_power_numbers() -> None:
    result = judge(claim("a > b"), {"a": HIGH, "b": MID})
    assert (result.power, result.detectable, result.seeds_needed) == (None, None, None)
    assert all(step.power is None for step in result.steps)
