"""stats: checked against by-hand formulas, planted effects and seed noise, not against scipy calling itself."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import t as student_t

from droplab.claims import (
    CONFIRMED,
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_RUN,
    Claim,
    ClaimsError,
    Expectation,
    evaluate,
    load_claims,
)
from droplab.errors import DroplabError
from droplab.stats import DIFFERS, NOISE, TOO_FEW, StatsError, compare, summarize


def draws(mean: float, sd: float, n: int = 5, seed: int = 0) -> list[float]:
    return list(np.random.default_rng(seed).normal(mean, sd, n))


def claim(expect: str, **extra: object) -> Claim:
    return Claim(id="c", study="S", says="says", metric="test.acc1", expect=expect, **extra)


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


def welch_by_hand(a: list[float], b: list[float], confidence: float) -> tuple[float, float, float, float]:
    """Welch-Satterthwaite written out: difference, CI and two-sided p."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    se2 = va / na + vb / nb
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    d, se = ma - mb, math.sqrt(se2)
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
    assert result.detail == "a vs b: needs at least 2 seeds of each"
    assert result.numbers.startswith("0.900 (n=1) > 0.8")


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
    assert result.verdict == INCONCLUSIVE and result.detail.endswith("; tolerance ±0.02")


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
        (broken("metric", "val.top1"), "claim 's4': metric 'val.top1': expected '<split>.<name>' with split in "
                                       "train|val|test and name in loss|acc1|acc5|f1_macro"),
        (broken("expect", "a >> b"), "claim 's4': expect 'a >> b': expected 'A > B [> C ...]', 'A < B [...]' "
                                     "or 'A ~ B'"),
        (broken("expect", "a > b < c"), "claim 's4': expect 'a > b < c': mixes '<' and '>'"),
        (broken("expect", "a ~ b ~ c"), "claim 's4': expect 'a ~ b ~ c': '~' compares exactly two variants"),
        (broken("expect", "a > a"), "claim 's4': expect 'a > a': variant 'a' appears more than once"),
        (broken("expect", "a > b c"), "claim 's4': expect 'a > b c': expected 'A > B"),
        (broken("tolerance", 0), "claim 's4': tolerance 0: Input should be greater than 0"),
        (broken("id", "s1"), "claim 's1': id is used twice (list items 1 and 2)"),
        (broken("colour", "red"), "claim 's4': unknown key 'colour'; allowed: id, study"),
        (broken("id", 7), "list item 2: id 7: Input should be a valid string"),
        ([EXAMPLE[0], "s2"], "list item 2: expected a mapping"),
        ([{k: v for k, v in EXAMPLE[0].items() if k != "says"}], "claim 's1': says: missing"),
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
