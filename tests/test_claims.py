"""claims: parsing, and verdicts checked against by-hand statistics and planted effects."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps
from scipy.stats import t as student_t

from droplab.results.claims import (
    BN_METRICS,
    CONFIRMED,
    CONTRADICTED,
    INCONCLUSIVE,
    LAYERWISE,
    NOT_RUN,
    UNTRAINED,
    Claim,
    ClaimsError,
    Expectation,
    evaluate,
    load_claims,
    parse_expect,
)
from droplab.results.stats import (
    StatsError,
    compare,
    detectable_difference,
    equivalence_seeds_needed,
    paired_sd,
    pooled_sd,
    seeds_needed,
)

from synthetic import draws


def claim(expect: str, **extra: object) -> Claim:
    return Claim(id="c", study="S", says="says", **{"metric": "test.acc1", **extra}, expect=expect)


# --- claims: evaluate ----------------------------------------------------------------------------

HIGH, MID, LOW = draws(0.90, 0.005, seed=5), draws(0.80, 0.005, seed=6), draws(0.70, 0.005, seed=7)
NOISY_A, NOISY_B = draws(0.80, 0.05, seed=8), draws(0.80, 0.05, seed=9)


def test_chain_confirmed() -> None:
    result = evaluate(claim("a > b > c"), {"a": HIGH, "b": MID, "c": LOW, "unrelated": [0.0]})
    assert result.verdict == CONFIRMED
    assert result.numbers.count(" > ") == 2 and result.numbers.endswith("(n=5)")
    ab, bc = compare(HIGH, MID), compare(MID, LOW)
    assert result.detail == (f"a - b = {ab.difference:+.4f}, 95% CI [{ab.ci_low:+.4f}, {ab.ci_high:+.4f}]; "
                             f"b - c = {bc.difference:+.4f}, 95% CI [{bc.ci_low:+.4f}, {bc.ci_high:+.4f}]")


def test_chain_contradicted_by_one_pair() -> None:
    assert evaluate(claim("a > b > c"), {"a": HIGH, "b": LOW, "c": MID}).verdict == CONTRADICTED


def test_chain_inconclusive_within_noise() -> None:
    assert evaluate(claim("a > b > c"), {"a": HIGH, "b": NOISY_A, "c": NOISY_B}).verdict == INCONCLUSIVE


def test_chain_inconclusive_with_one_seed() -> None:
    result = evaluate(claim("a > b"), {"a": [0.9], "b": MID})
    assert result.verdict == INCONCLUSIVE
    assert result.detail == (f"a - b = {0.9 - statistics.fmean(MID):+.4f}, no interval with one seed; "
                             "needs at least 2 seeds of each to estimate the seed noise")
    assert result.numbers.startswith("0.900 (n=1) > 0.8")
    assert (result.detectable, result.seeds_needed) == (None, None)


def test_less_than_chain_mirrors() -> None:
    assert evaluate(claim("c < b < a"), {"a": HIGH, "b": MID, "c": LOW}).verdict == CONFIRMED
    assert evaluate(claim("a < b"), {"a": HIGH, "b": MID}).verdict == CONTRADICTED


def test_numbers_use_ci_half_width() -> None:
    result = evaluate(claim("a > b"), {"a": [0.80, 0.82, 0.84], "b": [0.5, 0.5]})
    half = 4.302652729749464 * 0.02 / math.sqrt(3)
    assert result.numbers == f"0.820 ± {half:.3f} (n=3) > 0.500 ± 0.000 (n=2)"


def test_alike_confirmed_contradicted_inconclusive() -> None:
    tight = draws(0.80, 0.001, seed=10), draws(0.80, 0.001, seed=11)
    assert evaluate(claim("a ~ b"), dict(zip("ab", tight, strict=True))).verdict == CONFIRMED
    assert evaluate(claim("a ~ b"), {"a": HIGH, "b": LOW}).verdict == CONTRADICTED
    result = evaluate(claim("a ~ b", tolerance=0.02), {"a": NOISY_A, "b": NOISY_B})
    assert result.verdict == INCONCLUSIVE and "; tolerance ±0.02; underpowered: " in result.detail


def test_alike_with_one_seed_is_inconclusive() -> None:
    assert evaluate(claim("a ~ b"), {"a": [0.8], "b": [0.8, 0.8]}).verdict == INCONCLUSIVE


@pytest.mark.parametrize(("a", "verdict"), [([0.805] * 3, CONFIRMED), ([0.9] * 3, CONTRADICTED)])
def test_alike_deterministic_runs(a: list[float], verdict: str) -> None:
    assert evaluate(claim("a ~ b"), {"a": a, "b": [0.8] * 3}).verdict == verdict


def test_deterministic_chain_is_decided_by_the_difference_alone() -> None:
    assert evaluate(claim("a > b"), {"a": [0.81] * 2, "b": [0.80] * 2}).verdict == CONFIRMED
    assert evaluate(claim("a > b"), {"a": [0.80] * 2, "b": [0.80] * 2}).verdict == INCONCLUSIVE


def test_not_run_when_a_variant_has_no_values() -> None:
    result = evaluate(claim("a > b > c"), {"a": HIGH, "c": []})
    assert result.verdict == NOT_RUN
    assert result.detail == "no test.acc1 values for b, c"
    assert result.numbers.endswith("> not run > not run")


def test_evaluate_names_the_claim_on_bad_values() -> None:
    with pytest.raises(StatsError, match=r"claim 'c' \(test.acc1\): value inf"):
        evaluate(claim("a > b"), {"a": [0.5, float("inf")], "b": MID})


def test_result_carries_the_claim() -> None:
    result = evaluate(claim("a > b"), {"a": HIGH, "b": MID})
    assert (result.id, result.study, result.says, result.metric, result.expect) == (
        "c", "S", "says", "test.acc1", "a > b")


# --- claims: parsing and loading -----------------------------------------------------------------


def test_expectation_and_variants() -> None:
    assert claim("resnet18_avg > s3-max > s3_head").expectation() == Expectation(
        ">", ("resnet18_avg", "s3-max", "s3_head"))
    assert claim("a<b").variants() == ["a", "b"]
    assert claim("a ~ b").tolerance == 0.01


EXAMPLE = [
    {"id": "s1", "study": "S1", "says": "x", "metric": "val.acc5", "expect": "after > before"},
    {"id": "s4", "study": "S4", "says": "y", "metric": "test.acc1", "expect": "p2 ~ p5", "tolerance": 0.02},
]


def write(tmp_path: Path, claims: object) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(claims))
    return path


def test_load_claims(tmp_path: Path) -> None:
    claims = load_claims(write(tmp_path, EXAMPLE))
    assert [c.id for c in claims] == ["s1", "s4"]
    assert claims[1].tolerance == 0.02 and claims[1].variants() == ["p2", "p5"]


def test_the_repository_example_format_loads(tmp_path: Path) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text("""\
- id: s3-head-order-resnet18
  study: S3
  says: "avg > max > dropout_classifier on accuracy"
  metric: test.acc1
  expect: resnet18_avg > s3_resnet18_max > s3_resnet18_dropout_head
""")
    assert load_claims(path)[0].variants() == ["resnet18_avg", "s3_resnet18_max", "s3_resnet18_dropout_head"]


def broken(field: str, value: object) -> list[dict]:
    return [EXAMPLE[0], {**EXAMPLE[1], field: value}]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (broken("metric", "val.top1"), "claim 's4': metric: expected '<split>.<name>' with split in "
                                       "train|val|test and name in loss|acc1|acc5|f1_macro"),
        (broken("expect", "a >> b"), "claim 's4': expect: expected 'A > B [> C ...]', 'A < B [...]' "
                                     "or 'A ~ B'"),
        (broken("expect", "a > b < c"), "claim 's4': expect: mixes '<' and '>'"),
        (broken("expect", "a ~ b ~ c"), "claim 's4': expect: '~' compares exactly two variants"),
        (broken("expect", "a > a"), "claim 's4': expect: variant 'a' appears more than once"),
        (broken("expect", "a > b c"), "claim 's4': expect: expected 'A > B"),
        (broken("tolerance", 0), "claim 's4': tolerance: Input should be greater than 0"),
        (broken("id", "s1"), "claim 's1': id is used twice (list items 1 and 2)"),
        (broken("colour", "red"), "claim 's4': colour: unknown key; allowed: id, study"),
        (broken("id", 7), "list item 2: id: Input should be a valid string"),
        ([EXAMPLE[0], "s2"], "list item 2: expected a mapping"),
        ([{k: v for k, v in EXAMPLE[0].items() if k != "says"}], "claim 's1': says: required key is missing"),
        ([{**EXAMPLE[0], "tolerance": 0.05}], "claim 's1': tolerance is only used by 'A ~ B' claims"),
        ({"s1": EXAMPLE[0]}, "expected a list of claims, got dict"),
    ],
)
def test_load_claims_errors_name_file_claim_and_field(tmp_path: Path, claims: object, message: str) -> None:
    path = write(tmp_path, claims)
    with pytest.raises(ClaimsError) as info:
        load_claims(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_load_claims_reports_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, [{**EXAMPLE[0], "metric": "x"}, {**EXAMPLE[1], "expect": "?"}])
    with pytest.raises(ClaimsError) as info:
        load_claims(path)
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["claim 's1'", "claim 's4'"]


@pytest.mark.parametrize(
    ("text", "message"), [("- [unclosed", "not valid YAML"), ("", "expected a list of claims, got an empty file")]
)
def test_load_claims_not_yaml_or_empty(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text(text)
    with pytest.raises(ClaimsError, match=f"^{path}: {message}"):
        load_claims(path)


def test_load_claims_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ClaimsError, match="claims.yaml: file not found"):
        load_claims(tmp_path / "claims.yaml")


# --- numeric second terms, paired and bn.* metrics: parsing --------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a ~ 0", Expectation("~", ("a",), 0.0)), ("a > 1.5", Expectation(">", ("a",), 1.5)),
     ("a<-0.1", Expectation("<", ("a",), -0.1)), ("a > -2", Expectation(">", ("a",), -2.0)),
     ("a > 1e-3", Expectation(">", ("a",), 0.001)), ("a ~ .5", Expectation("~", ("a",), 0.5))],
)
def test_parse_expect_numeric_second_term(text: str, expected: Expectation) -> None:
    assert parse_expect(text) == expected
    assert claim(text).variants() == ["a"]


def test_parse_expect_variant_forms_have_no_constant() -> None:
    assert parse_expect("a > b > c") == Expectation(">", ("a", "b", "c"), None)


def test_bn_metrics_are_claimable() -> None:
    assert LAYERWISE == ("dropout_variance_ratio", "theory_gap") and set(LAYERWISE) <= set(BN_METRICS)
    for name in BN_METRICS:
        assert claim("a > b", metric=f"bn.{name}").layerwise() == (name in LAYERWISE)
    assert not claim("a > b").layerwise()


NUMBER_FORMS = "a number compares with exactly one variant, after it: 'A > 1.5', 'A < 0.1' or 'A ~ 0'"


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"expect": "0 < a"}, f"expect: {NUMBER_FORMS}; got '0' as term 1 of 2"),
     ({"expect": "a > 1 > b"}, f"expect: {NUMBER_FORMS}; got '1' as term 2 of 3"),
     ({"expect": "a > b > 1"}, f"expect: {NUMBER_FORMS}; got '1' as term 3 of 3"),
     ({"expect": "a ~ 1 ~ b"}, "expect: '~' compares exactly two variants"),
     ({"expect": "a > 1.2.3"}, "expect: expected 'A > B [> C ...]', 'A < B [...]' or 'A ~ B'"),
     ({"expect": "a ~ 1e999"}, "expect: number '1e999': expected a finite number"),
     ({"expect": "a > 1", "paired": True},
      "paired compares variants seed by seed; expect 'a > 1' has one variant and a number"),
     ({"expect": "a > 1", "tolerance": 0.1}, "tolerance is only used by 'A ~ B' claims, not by expect 'a > 1'"),
     ({"paired": "yes"}, "paired: Input should be a valid boolean"),
     ({"metric": "bn.nope"}, "metric: expected '<split>.<name>' with split in train|val|test and name in "
                             "loss|acc1|acc5|f1_macro, or 'bn.<name>' with name in dropout_variance_ratio|theory_gap|"
                             "recal_gain|recal_gain_vs_twin")],
)
def test_new_claim_fields_errors(tmp_path: Path, changes: dict, message: str) -> None:
    path = write(tmp_path, [{**EXAMPLE[0], **changes}])
    with pytest.raises(ClaimsError) as info:
        load_claims(path)
    assert str(info.value).startswith(f"{path}: claim 's1': {message}")


def test_new_claim_fields_load(tmp_path: Path) -> None:
    path = write(tmp_path, [{**EXAMPLE[0], "expect": "after > before", "paired": True},
                            {**EXAMPLE[1], "metric": "bn.theory_gap", "expect": "p2 ~ 0", "tolerance": 0.05}])
    paired, gap = load_claims(path)
    assert paired.paired and not gap.paired
    assert gap.expectation() == Expectation("~", ("p2",), 0.0) and gap.layerwise()


# --- paired claims ---------------------------------------------------------------------------------

SEED_LUCK = np.random.default_rng(30).normal(0, 0.02, 6)  # shared by the two variants of one seed
TWIN_A = list(0.80 + SEED_LUCK + np.random.default_rng(31).normal(0, 0.002, 6))
TWIN_B = list(0.79 + SEED_LUCK + np.random.default_rng(32).normal(0, 0.002, 6))


def test_paired_claim_is_judged_by_ttest_rel() -> None:
    result = evaluate(claim("a > b", paired=True), {"a": TWIN_A, "b": TWIN_B})
    ci = sps.ttest_rel(TWIN_A, TWIN_B).confidence_interval(0.95)
    d = statistics.fmean(TWIN_A) - statistics.fmean(TWIN_B)
    assert result.detail == f"a - b = {d:+.4f}, paired 95% CI [{ci.low:+.4f}, {ci.high:+.4f}]"
    assert (result.verdict, result.paired) == (CONFIRMED, True)
    unpaired = evaluate(claim("a > b"), {"a": TWIN_A, "b": TWIN_B})
    assert (unpaired.verdict, unpaired.paired) == (INCONCLUSIVE, False)  # the seed's luck swamps Welch


def test_paired_claim_needs_equal_seed_counts() -> None:
    result = evaluate(claim("a > b", paired=True), {"a": [0.8, 0.81, 0.82], "b": [0.7, 0.71]})
    assert result.verdict == INCONCLUSIVE
    assert result.detail == "paired needs equal seed counts: a has 3, b has 2"


# --- '~' by TOST, and comparisons with a number ----------------------------------------------------


def welch_parts(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Welch-Satterthwaite written out: difference, standard error, degrees of freedom."""
    na, nb = len(a), len(b)
    va, vb = statistics.variance(a), statistics.variance(b)
    se2 = va / na + vb / nb
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return sum(a) / na - sum(b) / nb, math.sqrt(se2), df


ALIKE_A, ALIKE_B = draws(0.80, 0.004, n=4, seed=33), draws(0.803, 0.004, n=6, seed=34)


def test_alike_uses_the_90_percent_tost_interval() -> None:
    d, se, df = welch_parts(ALIKE_A, ALIKE_B)
    low, high = d - student_t.ppf(0.95, df) * se, d + student_t.ppf(0.95, df) * se
    # a tolerance the 90% interval fits inside but the 95% one does not
    tolerance = max(-low, high, -d + student_t.ppf(0.96, df) * se, d + student_t.ppf(0.96, df) * se)
    assert tolerance < max(abs(d - student_t.ppf(0.975, df) * se), abs(d + student_t.ppf(0.975, df) * se))
    result = evaluate(claim("a ~ b", tolerance=tolerance), {"a": ALIKE_A, "b": ALIKE_B})
    assert result.verdict == CONFIRMED
    assert result.detail == f"a - b = {d:+.4f}, 90% CI [{low:+.4f}, {high:+.4f}]; tolerance ±{tolerance:g}"


def test_alike_contradicted_only_when_the_interval_is_outside() -> None:
    d, se, df = welch_parts(HIGH, MID)
    low = d - student_t.ppf(0.95, df) * se
    assert evaluate(claim("a ~ b", tolerance=low * 0.99), {"a": HIGH, "b": MID}).verdict == CONTRADICTED
    assert evaluate(claim("a ~ b", tolerance=low * 1.01), {"a": HIGH, "b": MID}).verdict == INCONCLUSIVE


def test_paired_alike_and_alike_to_zero() -> None:
    differences = [x - y for x, y in zip(TWIN_A, TWIN_B, strict=True)]
    d, sd = statistics.fmean(differences), statistics.stdev(differences)
    half = student_t.ppf(0.95, 5) * sd / math.sqrt(6)
    result = evaluate(claim("a ~ b", paired=True, tolerance=0.02), {"a": TWIN_A, "b": TWIN_B})
    assert result.verdict == CONFIRMED  # |d| + half < 0.02
    assert result.detail.startswith(f"a - b = {d:+.4f}, paired 90% CI [{d - half:+.4f}, {d + half:+.4f}]")
    to_zero = evaluate(claim("a ~ 0", tolerance=0.02), {"a": differences})
    assert to_zero.verdict == CONFIRMED
    assert to_zero.detail.startswith(f"a - 0 = {d:+.4f}, 90% CI [{d - half:+.4f}, {d + half:+.4f}]")
    assert to_zero.numbers.endswith(" ~ 0")


@pytest.mark.parametrize(("expect", "verdict"), [("a > 0.75", CONFIRMED), ("a < 0.75", CONTRADICTED),
                                                 ("a > 0.81", INCONCLUSIVE), ("a < 0.9", CONFIRMED)])
def test_compare_with_a_number(expect: str, verdict: str) -> None:
    result = evaluate(claim(expect), {"a": [0.80, 0.82, 0.84]})
    assert result.verdict == verdict
    value = float(expect.split()[-1])
    half = 4.302652729749464 * 0.02 / math.sqrt(3)  # t_{0.975, 2}
    d = 0.82 - value
    assert result.detail.startswith(f"a - {value:g} = {d:+.4f}, 95% CI [{d - half:+.4f}, {d + half:+.4f}]")
    assert result.numbers == f"0.820 ± {half:.3f} (n=3) {expect.split()[1]} {value:g}"


# --- layerwise BN metrics --------------------------------------------------------------------------

UP = {"layer1.0.bn1": draws(1.6, 0.01, seed=40), "layer1.0.bn2": draws(1.4, 0.01, seed=41)}
DOWN = {"layer1.0.bn1": draws(1.0, 0.01, seed=42), "layer1.0.bn2": draws(1.0, 0.01, seed=43),
        "layer4.1.bn2": draws(1.0, 0.01, seed=44)}  # a layer UP lacks: not judged
RATIO = "bn.dropout_variance_ratio"


def layer_entry(layer: str, a: list[float], b: list[float]) -> str:
    d, se, df = welch_parts(a, b)
    half = student_t.ppf(0.975, df) * se
    return f"{layer}: {d:+.3g} [{d - half:+.3g}, {d + half:+.3g}]"


def test_layerwise_all_layers_confirm() -> None:
    result = evaluate(claim("a > b", metric=RATIO), {"a": UP, "b": DOWN})
    assert result.verdict == CONFIRMED
    entries = [layer_entry(layer, UP[layer], DOWN[layer]) for layer in UP]
    assert result.detail == "a - b per BN layer, 95% CI: " + "; ".join(entries)
    means = {name: statistics.fmean(statistics.fmean(by_layer[layer]) for layer in UP)
             for name, by_layer in (("a", UP), ("b", DOWN))}
    assert result.numbers == f"{means['a']:.3f} (mean over 2 BN layers) > {means['b']:.3f} (mean over 2 BN layers)"


def test_layerwise_one_contradicting_layer_contradicts() -> None:
    up = {**UP, "layer1.0.bn2": draws(0.9, 0.01, seed=45)}
    assert evaluate(claim("a > b", metric=RATIO), {"a": up, "b": DOWN}).verdict == CONTRADICTED
    noisy_and_down = {**up, "layer1.0.bn1": draws(1.0, 0.3, seed=46)}
    assert evaluate(claim("a > b", metric=RATIO), {"a": noisy_and_down, "b": DOWN}).verdict == CONTRADICTED


def test_layerwise_one_undecided_layer_is_inconclusive_and_named() -> None:
    noisy = draws(1.05, 0.1, seed=47)
    up = {**UP, "layer1.0.bn2": noisy}
    result = evaluate(claim("a > b", metric=RATIO), {"a": up, "b": DOWN})
    assert result.verdict == INCONCLUSIVE
    size = detectable_difference(pooled_sd(noisy, DOWN["layer1.0.bn2"]), 5, 5)
    assert f"; layer1.0.bn2: underpowered: with 5 seeds it would detect ≥ {size:.4f} (80% power)" in result.detail
    assert result.detectable == pytest.approx(size)


def test_layerwise_without_a_common_layer_is_not_run() -> None:
    result = evaluate(claim("a > b", metric=RATIO), {"a": {"x.bn": [1.0, 1.1]}, "b": {"y.bn": [1.0, 1.1]}})
    assert (result.verdict, result.detail) == (NOT_RUN, "no BN layer is common to a, b")
    missing = evaluate(claim("a > b", metric=RATIO), {"a": UP, "b": {}})
    assert (missing.verdict, missing.detail) == (NOT_RUN, f"no {RATIO} values for b")
    assert missing.numbers.endswith(" > not run")


def test_layerwise_against_a_number_judges_every_layer_of_the_variant() -> None:
    gaps = {"layer1.0.bn1": draws(0.001, 0.005, seed=48), "layer2.0.bn1": draws(-0.002, 0.005, seed=49)}
    result = evaluate(claim("a ~ 0", metric="bn.theory_gap", tolerance=0.05), {"a": gaps})
    assert result.verdict == CONFIRMED
    assert result.detail.startswith("a - 0 per BN layer, 90% CI: layer1.0.bn1: ")
    assert result.detail.count(".bn1: ") == 2
    off = {**gaps, "layer3.0.bn1": draws(0.2, 0.005, seed=50)}
    assert evaluate(claim("a ~ 0", metric="bn.theory_gap", tolerance=0.05), {"a": off}).verdict == CONTRADICTED


def test_layerwise_values_must_be_per_layer_and_scalar_ones_not() -> None:
    with pytest.raises(ClaimsError, match="values for 'a': expected a mapping of BN layer -> one value per seed, "
                                          "got list"):
        evaluate(claim("a > b", metric=RATIO), {"a": [1.0, 1.1], "b": DOWN})
    with pytest.raises(ClaimsError, match="values for 'a': expected one value per seed, got dict"):
        evaluate(claim("a > b", metric="bn.recal_gain"), {"a": UP, "b": [0.1, 0.2]})


def test_layerwise_names_the_claim_on_bad_values() -> None:
    with pytest.raises(StatsError, match=r"claim 'c' \(bn.dropout_variance_ratio\): value nan"):
        evaluate(claim("a > b", metric=RATIO), {"a": {"l": [1.0, float("nan")]}, "b": {"l": [1.0, 1.1]}})


# --- untrained runs ----------------------------------------------------------------------------------


def test_a_confirmation_resting_on_untrained_runs_is_withheld() -> None:
    result = evaluate(claim("a > b"), {"a": HIGH, "b": MID}, untrained={"b": [0], "other": [1]})
    assert result.verdict == UNTRAINED == "not confirmable: rests on untrained runs"
    assert result.detail.endswith("]; untrained: b seed 0")
    both = evaluate(claim("a > b"), {"a": HIGH, "b": MID}, untrained={"a": [3, 1], "b": [0]})
    assert both.detail.endswith("; untrained: a seeds 1, 3 and b seed 0")


def test_untrained_runs_are_named_but_other_verdicts_stand() -> None:
    contradicted = evaluate(claim("a > b"), {"a": MID, "b": HIGH}, untrained={"a": [2]})
    assert (contradicted.verdict, contradicted.detail.endswith("; untrained: a seed 2")) == (CONTRADICTED, True)
    undecided = evaluate(claim("a > b"), {"a": NOISY_A, "b": NOISY_B}, untrained={"a": [2]})
    assert undecided.verdict == INCONCLUSIVE and "seeds; untrained: a seed 2" in undecided.detail


def test_untrained_elsewhere_changes_nothing() -> None:
    plain = evaluate(claim("a > b"), {"a": HIGH, "b": MID})
    assert evaluate(claim("a > b"), {"a": HIGH, "b": MID}, untrained={"c": [0], "a": []}) == plain


# --- the power statement of undecided claims -------------------------------------------------------


def power_by_hand(delta: float, se: float, df: int) -> float:
    critical = student_t.ppf(0.975, df)
    return sps.nct.sf(critical, df, delta / se) + sps.nct.cdf(-critical, df, delta / se)


def test_undecided_difference_states_what_the_seeds_detect() -> None:
    result = evaluate(claim("a > b"), {"a": NOISY_A, "b": NOISY_B})
    assert result.verdict == INCONCLUSIVE
    sd = math.sqrt((statistics.variance(NOISY_A) + statistics.variance(NOISY_B)) / 2)
    assert power_by_hand(result.detectable, sd * math.sqrt(2 / 5), 8) == pytest.approx(0.80, abs=1e-6)
    size = detectable_difference(pooled_sd(NOISY_A, NOISY_B), 5, 5)
    d = statistics.fmean(NOISY_A) - statistics.fmean(NOISY_B)
    needed = seeds_needed(sd, d)
    assert (result.detectable, result.seeds_needed) == (pytest.approx(size), needed)
    assert result.detail.endswith(f"; underpowered: with 5 seeds it would detect ≥ {size:.4f} (80% power); "
                                  f"deciding the observed difference of {d:+.4f} needs ≈ {needed} seeds")


def test_undecided_paired_and_one_sample_use_their_own_noise() -> None:
    a, b = TWIN_A[:3], [x - 0.004 for x in TWIN_A[:3]]
    b[0] += 0.01  # differences -0.006, +0.004, +0.004
    paired = evaluate(claim("a > b", paired=True), {"a": a, "b": b})
    assert paired.verdict == INCONCLUSIVE
    assert paired.detectable == pytest.approx(detectable_difference(paired_sd(a, b), 3, paired=True))
    assert f"with 3 seeds it would detect ≥ {paired.detectable:.4f}" in paired.detail
    one_sample = evaluate(claim("a > 0.81"), {"a": [0.80, 0.82, 0.84]})
    assert one_sample.detectable == pytest.approx(detectable_difference(0.02, 3, paired=True))
    uneven = evaluate(claim("a > b"), {"a": NOISY_A[:3], "b": NOISY_A})
    assert "underpowered: with 3 and 5 seeds it would detect" in uneven.detail


def test_undecided_without_any_difference_or_with_a_tiny_one() -> None:
    none = evaluate(claim("a > b"), {"a": [0.8] * 2, "b": [0.8] * 2})
    assert none.detail.endswith("; no seed count would decide a difference of 0")
    assert (none.detectable, none.seeds_needed) == (0.0, None)
    tiny = evaluate(claim("a > b"), {"a": [0.7, 0.9, 0.8], "b": [0.69999, 0.9, 0.8]})
    assert tiny.detail.endswith("needs more than 1000 seeds") and tiny.seeds_needed is None


def test_undecided_chain_names_its_weakest_pair() -> None:
    result = evaluate(claim("a > b > c"), {"a": HIGH, "b": NOISY_A, "c": NOISY_B})
    assert "; b - c: underpowered: with 5 seeds" in result.detail


def test_undecided_alike_states_the_interval_and_the_seeds_to_confirm() -> None:
    a, b = draws(0.80, 0.02, seed=51), draws(0.80, 0.02, seed=52)
    d, se, df = welch_parts(a, b)
    half = student_t.ppf(0.95, df) * se
    result = evaluate(claim("a ~ b", tolerance=0.015), {"a": a, "b": b})
    assert result.verdict == INCONCLUSIVE and abs(d) < 0.015
    needed = equivalence_seeds_needed(pooled_sd(a, b), d, 0.015)
    assert needed > 5
    assert result.detail.endswith(f"; tolerance ±0.015; underpowered: the 90% interval spans ±{half:.4f}; "
                                  f"confirming ±0.015 needs ≈ {needed} seeds")
    assert (result.detectable, result.seeds_needed) == (pytest.approx(half), needed)
    far = evaluate(claim("a ~ b", tolerance=0.02), {"a": NOISY_A, "b": NOISY_B})
    assert far.detail.endswith("±0.02 cannot be confirmed: the observed difference "
                               f"{statistics.fmean(NOISY_A) - statistics.fmean(NOISY_B):+.4f} is not inside it")


def test_decided_claims_carry_no_power_numbers() -> None:
    result = evaluate(claim("a > b"), {"a": HIGH, "b": MID})
    assert (result.detectable, result.seeds_needed, result.paired) == (None, None, False)
    assert "underpowered" not in result.detail
    assert compare(HIGH, MID).ci_low > 0
