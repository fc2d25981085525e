"""verdicts: Holm within each family of claims (checked against Holm's step-down written out), the verdict
following the adjusted p, and the other readings that mark a decided verdict fragile."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scipy import stats as sps

from droplab.results.claims import Claim
from droplab.results.judge import Judgement, judge
from droplab.results.verdict_words import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_RUN, not_testable
from droplab.results.verdicts import READINGS, Row, adjust, other_readings, verdict_text

from synthetic import draws

RECAL, LOSS = READINGS
LOSS_TOLERANCE = 0.03
BASE = draws(0.80, 0.01, seed=1)


def up(by: float) -> list[float]:
    return [x + by for x in BASE]


def welch_p(a: list[float], b: list[float]) -> float:
    return float(sps.ttest_ind(a, b, equal_var=False).pvalue)


def claim(id: str, expect: str = "a > b", metric: str = "test.acc1", **extra: object) -> Claim:
    return Claim(id=id, study="S", says="says", metric=metric, expect=expect, **extra)


def judged(c: Claim, values: dict) -> Row:
    return Row(c, c.variants(), judge(c, values), "reached")


def holm_by_hand(p_values: list[float]) -> list[float]:
    """Holm's step-down by its definition: the i-th smallest p becomes the largest of
    min(1, (m - j + 1) p_(j)) over j <= i."""
    m = len(p_values)
    ordered = sorted(p_values)
    stepped = [max(min(1.0, (m - j) * ordered[j]) for j in range(i + 1)) for i in range(m)]
    return [stepped[ordered.index(p)] for p in p_values]


def no_other_readings(claim: Claim, names: list[str]) -> Judgement | None:
    raise AssertionError(f"rejudged {claim.id} ({claim.metric}), which is not a decided accuracy claim")


def test_the_planted_p_values_are_what_the_tests_below_need() -> None:
    assert welch_p(up(0.03), BASE) < 0.001
    assert 0.025 < welch_p(up(0.015), BASE) < welch_p(up(0.014), BASE) < 0.05  # each significant alone
    assert 0.01 < welch_p(up(0.016), BASE) < 0.025


# --- Holm within each family ----------------------------------------------------------------------


def test_holm_is_applied_within_each_family_separately() -> None:
    seed = [judged(claim(f"s{i}"), {"a": up(by), "b": BASE}) for i, by in enumerate([0.03, 0.015, 0.014])]
    mechanism = [judged(claim(f"m{i}", metric="bn.recal_gain"), {"a": up(by), "b": BASE})
                 for i, by in enumerate([0.016, 0.05])]
    rows = [seed[0], mechanism[0], seed[1], mechanism[1], seed[2]]  # families interleaved
    adjust(rows, lambda c, names: None, LOSS_TOLERANCE)
    for family in (seed, mechanism):
        raw = [row.judgement.p_value for row in family]
        assert [row.p_holm for row in family] == pytest.approx(holm_by_hand(raw))
        assert {row.family_size for row in family} == {len(family)}
    # pooled into one family of five, the mechanism claim at p ≈ 0.02 would be multiplied by 3
    pooled = holm_by_hand([row.judgement.p_value for row in rows])
    assert pooled[1] > 0.05 > mechanism[0].p_holm


def test_the_verdict_follows_the_adjusted_p() -> None:
    """Two claims each significant alone (p ≈ 0.029 and 0.038): Holm doubles the smaller, so neither holds."""
    rows = [judged(claim("s0"), {"a": up(0.015), "b": BASE}), judged(claim("s1"), {"a": up(0.014), "b": BASE})]
    assert [row.judgement.verdict for row in rows] == [CONFIRMED, CONFIRMED]
    adjust(rows, no_other_readings, LOSS_TOLERANCE)
    smaller = 2 * welch_p(up(0.015), BASE)
    assert [row.p_holm for row in rows] == pytest.approx([smaller, max(smaller, welch_p(up(0.014), BASE))])
    assert [row.verdict for row in rows] == [INCONCLUSIVE, INCONCLUSIVE]


def test_adjusted_verdicts_keep_their_direction() -> None:
    rows = [judged(claim("s0"), {"a": BASE, "b": up(0.03)}),  # a > b, but a is lower: contradicted
            judged(claim("s1", expect="a < b"), {"a": BASE, "b": up(0.05)}),
            judged(claim("s2"), {"a": up(0.005), "b": BASE})]  # p ≈ 0.4: stays inconclusive
    adjust(rows, lambda c, names: None, LOSS_TOLERANCE)
    assert [row.verdict for row in rows] == [CONTRADICTED, CONFIRMED, INCONCLUSIVE]
    assert rows[0].p_holm == pytest.approx(holm_by_hand([row.judgement.p_value for row in rows])[0])


def test_rows_without_a_p_keep_their_judgement_and_are_not_counted() -> None:
    one_seed = judged(claim("one"), {"a": [0.9], "b": BASE})
    no_layer = judged(claim("bn", metric="bn.dropout_variance_ratio"), {"a": {"x": [1.0, 1.1]}, "b": {"y": [1.0]}})
    untestable = Row(claim("gated"), ["a", "b"], None, "not trained", not_testable("not trained"))
    missing = Row(claim("missing"), ["a", "b"], None, "no test.acc1 values for b")
    tested = [judged(claim("s0"), {"a": up(0.015), "b": BASE}), judged(claim("s1"), {"a": up(0.03), "b": BASE})]
    adjust([one_seed, no_layer, untestable, missing, *tested], lambda c, names: None, LOSS_TOLERANCE)
    assert (one_seed.verdict, one_seed.p_holm, one_seed.family_size) == (INCONCLUSIVE, None, 0)
    assert (no_layer.verdict, no_layer.p_holm) == (NOT_RUN, None)
    assert untestable.verdict == "not testable at this scale: not trained" and untestable.p_holm is None
    assert missing.verdict == NOT_RUN
    assert {row.family_size for row in tested} == {2}  # the rows without a test are not in the family
    assert tested[0].p_holm == pytest.approx(holm_by_hand([row.judgement.p_value for row in tested])[0])


# --- the other readings of a decided accuracy claim ----------------------------------------------

LOSS_LOW, LOSS_HIGH = draws(0.50, 0.01, seed=2), draws(0.60, 0.01, seed=3)


def fake_rejudge(recal: dict, loss: dict, calls: list) -> Callable[[Claim, list[str]], Judgement | None]:
    """Judge each reading's claim on the values planted for it, recording what was asked."""
    def rejudge(c: Claim, names: list[str]) -> Judgement | None:
        calls.append((c.id, c.metric, c.expect, c.tolerance, names))
        return judge(c, recal if c.metric == "recal.acc1" else loss)
    return rejudge


def test_agreeing_readings_leave_a_verdict_solid() -> None:
    row = judged(claim("s0"), {"a": up(0.03), "b": BASE})
    row.names = ["a_p0.5", "b"]  # the resolved names are what the readings are looked up by
    calls: list = []
    recal, loss = {"a": up(0.05), "b": BASE}, {"a": LOSS_LOW, "b": LOSS_HIGH}
    adjust([row], fake_rejudge(recal, loss, calls), LOSS_TOLERANCE)
    assert row.verdict == CONFIRMED and not row.fragile
    assert calls == [("s0", "recal.acc1", "a > b", 0.01, ["a_p0.5", "b"]), ("s0", "test.loss", "a < b", 0.01,
                                                                            ["a_p0.5", "b"])]
    recal_j = judge(claim("s0"), recal)  # the metric's name does not change the numbers
    loss_j = judge(claim("s0", expect="a < b", metric="test.loss"), loss)
    assert row.sensitivity == {RECAL: f"confirmed ({recal_j.difference})", LOSS: f"confirmed ({loss_j.difference})"}
    assert verdict_text(row) == CONFIRMED


def test_a_reading_that_disagrees_marks_the_verdict_fragile() -> None:
    row = judged(claim("s0"), {"a": up(0.03), "b": BASE})
    adjust([row], fake_rejudge({"a": up(0.05), "b": BASE}, {"a": LOSS_HIGH, "b": LOSS_LOW}, []), LOSS_TOLERANCE)
    assert row.verdict == CONFIRMED and row.fragile
    assert row.sensitivity[LOSS].startswith("contradicted (a - b = ")
    assert verdict_text(row) == "confirmed (fragile)"


def test_readings_are_held_to_the_claims_holm_level() -> None:
    """A reading at p ≈ 0.029 holds for the claim Holm multiplies by 1, not for the one it multiplies by 2."""
    first = judged(claim("first"), {"a": up(0.05), "b": BASE})  # the smallest p: Holm's multiplier 2
    second = judged(claim("second"), {"a": up(0.03), "b": BASE})  # multiplier 1
    recal = {"a": up(0.015), "b": BASE}
    adjust([first, second], fake_rejudge(recal, {"a": LOSS_LOW, "b": LOSS_HIGH}, []), LOSS_TOLERANCE)
    assert (first.verdict, second.verdict) == (CONFIRMED, CONFIRMED)
    difference = judge(claim("x"), recal).difference
    assert 2 * welch_p(up(0.015), BASE) > 0.05 > welch_p(up(0.015), BASE)
    assert (first.sensitivity[RECAL], first.fragile) == (f"inconclusive ({difference})", True)
    assert (second.sensitivity[RECAL], second.fragile) == (f"confirmed ({difference})", False)


def test_a_reading_that_cannot_be_measured_says_so_and_changes_nothing() -> None:
    row = judged(claim("s0"), {"a": up(0.03), "b": BASE})
    one_seed = {"a": [0.5], "b": [0.6, 0.61]}
    adjust([row], lambda c, names: None if c.metric == "recal.acc1" else judge(c, one_seed), LOSS_TOLERANCE)
    assert row.sensitivity == {RECAL: "not measured", LOSS: "not measured"}
    assert not row.fragile


def test_only_decided_accuracy_claims_are_read_again() -> None:
    undecided = judged(claim("s0"), {"a": up(0.005), "b": BASE})
    mechanism = judged(claim("m0", metric="bn.recal_gain"), {"a": up(0.05), "b": BASE})
    validation = judged(claim("v0", metric="val.acc1"), {"a": up(0.05), "b": BASE})
    adjust([undecided, mechanism, validation], no_other_readings, LOSS_TOLERANCE)
    assert (undecided.verdict, mechanism.verdict, validation.verdict) == (INCONCLUSIVE, CONFIRMED, CONFIRMED)
    assert undecided.sensitivity == mechanism.sensitivity == validation.sensitivity == {}


# --- other_readings -------------------------------------------------------------------------------


@pytest.mark.parametrize(("expect", "on_loss"), [("a > b", "a < b"), ("a < b", "a > b"),
                                                 ("a > b > c", "a < b < c"), ("c<b<a", "c>b>a")])
def test_other_readings_turn_the_relation_round_on_loss(expect: str, on_loss: str) -> None:
    original = claim("s0", expect=expect, paired=True, overfits="c")
    readings = other_readings(original, LOSS_TOLERANCE)
    assert list(readings) == [RECAL, LOSS]
    recal, loss = readings[RECAL], readings[LOSS]
    assert (recal.metric, recal.expect) == ("recal.acc1", expect)
    assert (loss.metric, loss.expect, loss.tolerance) == ("test.loss", on_loss, original.tolerance)
    for reading in (recal, loss):
        assert (reading.id, reading.study, reading.paired, reading.overfits) == ("s0", "S", True, "c")
    assert original.metric == "test.acc1" and original.expect == expect  # the claim itself is unchanged


def test_other_readings_of_alike_use_the_loss_tolerance() -> None:
    readings = other_readings(claim("s0", expect="a ~ b", tolerance=0.02), LOSS_TOLERANCE)
    assert (readings[RECAL].expect, readings[RECAL].tolerance) == ("a ~ b", 0.02)
    assert (readings[LOSS].expect, readings[LOSS].tolerance) == ("a ~ b", LOSS_TOLERANCE)
    assert other_readings(claim("s0", expect="a ~ b"), 0.5)[LOSS].tolerance == 0.5


@pytest.mark.parametrize("metric", ["val.acc1", "train.acc1", "test.acc5", "test.loss", "test.f1_macro",
                                    "bn.recal_gain"])
def test_other_readings_are_only_for_test_top1(metric: str) -> None:
    assert other_readings(claim("s0", metric=metric), LOSS_TOLERANCE) is None


@pytest.mark.parametrize("expect", ["a > 0.8", "a ~ 0.8"])
def test_a_claim_against_a_number_has_no_other_readings(expect: str) -> None:
    """A test loss against an accuracy threshold would mean nothing."""
    assert other_readings(claim("s0", expect=expect), LOSS_TOLERANCE) is None
