"""regimes: the trained floor and the overfitting measures, checked against numpy on synthetic curves and
against each threshold from both sides."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from droplab.results.claims import Overfitting, Trained
from droplab.results.regimes import (
    Floor,
    below_floor,
    mean_curve,
    overfitting,
    overfitting_problem,
    study_floor,
    trained_problem,
)

THRESHOLDS = Overfitting(lowest_val_loss_by=0.75, val_loss_rise=0.05, train_val_gap=0.05)


def curve(val_loss: list[float], train_acc1: list[float], val_acc1: list[float]) -> list[dict[str, float]]:
    return [{"val_loss": v, "train_acc1": t, "val_acc1": a, "epoch": e}
            for e, (v, t, a) in enumerate(zip(val_loss, train_acc1, val_acc1, strict=True), start=1)]


def overfitting_seeds(epochs: int = 8) -> list[list[dict[str, float]]]:
    """Three seeds of a model that overfits: loss falls, bottoms out and climbs; train top-1 pulls away."""
    rng = np.random.default_rng(3)
    x = np.arange(epochs)
    curves = []
    for _ in range(3):
        val_loss = 1.0 + 0.05 * (x - 4.0) ** 2 / 4 + rng.normal(0, 0.01, epochs)
        train = np.minimum(0.5 + 0.07 * x, 0.99) + rng.normal(0, 0.005, epochs)
        val = 0.5 + 0.03 * np.minimum(x, 4) + rng.normal(0, 0.005, epochs)
        curves.append(curve(list(val_loss), list(train), list(val)))
    return curves


def measured_by_numpy(curves: list[list[dict[str, float]]]) -> tuple[int, float, float]:
    """The seed-mean curves by numpy: 1-based epoch of the lowest validation loss (np.argmin: the
    first on a tie), its relative rise by the last epoch, and the last epoch's train - val top-1."""
    column = {key: np.array([[row[key] for row in c] for c in curves]).mean(axis=0)
              for key in ("val_loss", "train_acc1", "val_acc1")}
    lowest = int(np.argmin(column["val_loss"]))
    rise = column["val_loss"][-1] / column["val_loss"][lowest] - 1
    return lowest + 1, float(rise), float(column["train_acc1"][-1] - column["val_acc1"][-1])


# --- overfitting -----------------------------------------------------------------------------------


def test_overfitting_matches_numpy_on_seed_mean_curves() -> None:
    curves = overfitting_seeds()
    measure = overfitting(curves, THRESHOLDS)
    epoch, rise, gap = measured_by_numpy(curves)
    assert (measure.epochs, measure.seeds, measure.lowest_val_loss_epoch) == (8, 3, epoch)
    assert measure.val_loss_rise == pytest.approx(rise) and measure.train_val_gap == pytest.approx(gap)
    assert epoch <= 6 and rise >= 0.05 and gap >= 0.05  # the synthetic model does overfit
    assert measure.overfits and (measure.lowest_ok, measure.rise_ok, measure.gap_ok) == (True, True, True)


def test_overfitting_is_measured_on_the_mean_not_on_each_seed() -> None:
    """Each seed's minimum is elsewhere; the mean curve's is at epoch 3."""
    flat = [0.5, 0.5, 0.5, 0.5]
    a = curve([1.0, 0.5, 0.75, 1.0], flat, flat)  # minimum at epoch 2
    b = curve([1.0, 1.0, 0.5, 1.0], flat, flat)  # minimum at epoch 3, mean 0.625 there vs 0.75 at epoch 2
    measure = overfitting([a, b], THRESHOLDS)
    assert measure.lowest_val_loss_epoch == measured_by_numpy([a, b])[0] == 3
    assert mean_curve([a, b], "val_loss") == [1.0, 0.75, 0.625, 1.0]


def test_a_tied_minimum_counts_at_its_earliest_epoch() -> None:
    flat = [0.5] * 8
    tied = curve([1.0, 0.75, 0.5, 0.75, 0.75, 0.5, 0.75, 1.0], flat, flat)  # binary-exact: a real tie
    assert overfitting([tied], THRESHOLDS).lowest_val_loss_epoch == measured_by_numpy([tied])[0] == 3


def test_a_curve_still_falling_at_the_end_does_not_overfit() -> None:
    falling = curve([1.0, 0.9, 0.8, 0.7], [0.6, 0.7, 0.8, 0.9], [0.6, 0.65, 0.7, 0.75])
    measure = overfitting([falling], THRESHOLDS)
    assert (measure.lowest_val_loss_epoch, measure.val_loss_rise) == (4, 0.0)
    assert (measure.lowest_ok, measure.rise_ok, measure.gap_ok, measure.overfits) == (False, False, True, False)


def eight_epochs(lowest_epoch: int, rise: float, gap: float) -> list[dict[str, float]]:
    """One run of 8 epochs: validation loss 1 at `lowest_epoch`, 2 elsewhere before it, 1 + rise at the
    last epoch (and between); train top-1 0.5 + gap and validation top-1 0.5 at the last epoch."""
    val_loss = [2.0] * (lowest_epoch - 1) + [1.0] + [1.0 + rise] * (8 - lowest_epoch)
    return curve(val_loss, [0.5] * 7 + [0.5 + gap], [0.5] * 8)


@pytest.mark.parametrize(
    ("thresholds", "ok", "passes"),
    [({"lowest_val_loss_by": 0.75}, "lowest_ok", True), ({"lowest_val_loss_by": 0.74}, "lowest_ok", False),
     ({"val_loss_rise": 0.2 - 1e-9}, "rise_ok", True), ({"val_loss_rise": 0.2 + 1e-9}, "rise_ok", False),
     ({"train_val_gap": 0.125 - 1e-9}, "gap_ok", True), ({"train_val_gap": 0.125 + 1e-9}, "gap_ok", False)],
)
def test_each_threshold_just_passes_and_just_fails(thresholds: dict, ok: str, passes: bool) -> None:
    """Lowest at epoch 6 of 8 (75%), a rise of 0.2, a gap of 0.125: each threshold at (or a hair under)
    the measured value passes, a hair beyond it fails, and the other two measures stay met."""
    measure = overfitting([eight_epochs(6, 0.2, 0.125)], THRESHOLDS.model_copy(update=thresholds))
    assert (measure.lowest_val_loss_epoch, measure.val_loss_rise, measure.train_val_gap) == (
        6, pytest.approx(0.2), pytest.approx(0.125))
    flags = {"lowest_ok": measure.lowest_ok, "rise_ok": measure.rise_ok, "gap_ok": measure.gap_ok}
    assert flags.pop(ok) == passes
    assert all(flags.values())
    assert measure.overfits == passes


def test_the_lowest_epoch_threshold_on_binary_exact_fractions() -> None:
    for lowest, by, ok in [(1, 0.125, True), (2, 0.125, False), (4, 0.5, True), (5, 0.5, False), (8, 1.0, True)]:
        measure = overfitting([eight_epochs(lowest, 0.2, 0.125)], THRESHOLDS.model_copy(
            update={"lowest_val_loss_by": by}))
        assert (measure.lowest_val_loss_epoch, measure.lowest_ok) == (lowest, ok)


def test_the_lowest_epoch_threshold_is_not_lost_to_rounding() -> None:
    val_loss = [2.0] * 56 + [1.0] + [1.5] * 43
    run = curve(val_loss, [0.9] * 100, [0.5] * 100)
    measure = overfitting([run], THRESHOLDS.model_copy(update={"lowest_val_loss_by": 0.57}))
    assert measure.lowest_val_loss_epoch == 57 and measure.lowest_ok


def test_runs_of_different_lengths_are_refused() -> None:
    short = eight_epochs(6, 0.2, 0.125)[:7]
    with pytest.raises(ValueError, match=r"runs with different epoch counts: \[7, 8\]"):
        overfitting([eight_epochs(6, 0.2, 0.125), short], THRESHOLDS)


def test_describe_and_the_overfitting_problem_give_the_numbers() -> None:
    fails = overfitting([eight_epochs(7, 0.02, 0.125)], THRESHOLDS)
    text = fails.describe(THRESHOLDS)
    assert text.startswith("lowest mean validation loss at epoch 7 of 8 (needs ≤ 6), +2.0% by the last epoch "
                           "(needs ≥ +5%), train − validation top-1 there +0.125 (needs ≥ 0.05)")
    assert overfitting_problem("m", fails, THRESHOLDS) == f"m does not overfit: {text}"
    assert overfitting_problem("m", overfitting([eight_epochs(6, 0.2, 0.125)], THRESHOLDS), THRESHOLDS) is None
    assert overfitting_problem("m", None, THRESHOLDS) == "m, whose overfitting the claim needs, did not run"


# --- the trained floor ------------------------------------------------------------------------------

TRAINED = Trained(floors={"S1": "s1_linear", "S4": 0.25})


def test_study_floor_is_the_baseline_seed_mean() -> None:
    baseline = [0.40, 0.45, 0.47]
    floor = study_floor(TRAINED, "S1", {"s1_linear": baseline, "other": [0.9]})
    assert floor == Floor(pytest.approx(statistics.fmean(baseline)), "s1_linear, mean test top-1 of 3 seeds")
    assert study_floor(TRAINED, "S1", {"s1_linear": [0.4]}).source == "s1_linear, mean test top-1 of 1 seed"


def test_study_floor_declared_as_a_number() -> None:
    assert study_floor(TRAINED, "S4", {"s1_linear": [0.9]}) == Floor(0.25, "0.25, declared")
    assert study_floor(Trained(floors={"S5": 1}), "S5", {}) == Floor(1.0, "1, declared")


def test_study_floor_of_a_baseline_that_did_not_run_or_an_undeclared_study() -> None:
    assert study_floor(TRAINED, "S1", {}) == Floor(None, "s1_linear (not run)")
    assert study_floor(TRAINED, "S1", {"s1_linear": []}) == Floor(None, "s1_linear (not run)")
    assert study_floor(TRAINED, "S9", {"s1_linear": [0.4]}) is None


def test_below_floor_is_at_or_below() -> None:
    assert below_floor(Floor(0.5, "x"), {3: 0.5, 1: 0.49, 0: 0.51, 2: 0.1}) == [1, 2, 3]


def test_trained_problem_names_every_run_at_or_below_the_floor() -> None:
    floor = Floor(0.5, "s1_linear, mean test top-1 of 3 seeds")
    runs = {"a": {0: 0.9, 1: 0.5, 2: 0.8}, "b": {0: 0.4, 3: 0.2}, "c": {0: 0.7}}
    assert trained_problem(floor, "S1", runs) == (
        "not trained: a seed 1 (0.5000), b seed 0 (0.4000), b seed 3 (0.2000) at or below the floor 0.5000 "
        "(s1_linear, mean test top-1 of 3 seeds)")


def test_trained_problem_is_none_when_every_run_beats_the_floor() -> None:
    assert trained_problem(Floor(0.5, "x"), "S1", {"a": {0: 0.5001, 1: 0.9}, "b": {0: 0.6}}) is None


def test_trained_problem_without_a_floor() -> None:
    assert trained_problem(None, "S9", {"a": {0: 0.9}}) == "claims.yaml declares no trained floor for study S9"
    assert trained_problem(Floor(None, "s1_linear (not run)"), "S1", {"a": {0: 0.9}}) == (
        "no trained floor: s1_linear (not run)")
