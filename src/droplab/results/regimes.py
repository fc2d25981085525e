"""Is a claim tested in the regime it is about? Measured from the runs, against the thresholds
claims.yaml declares.

- trained: every run a claim compares beats its study's floor on test top-1, the mean test
  top-1 of the study's baseline variant (a linear classifier on the same images) or a number.
  A run below it (a diverged or barely started one, or a model a linear classifier beats) can
  neither confirm nor contradict anything.
- overfitting: a regularizer can only be judged where something overfits, so a claim about
  one names the model without it (`overfits`), whose seed-mean curves must show the lowest
  validation loss well before the last epoch, validation loss rising after it, and a gap
  between train and validation top-1 at the end.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from droplab.results.claims import Overfitting, Trained

Curve = Sequence[Mapping[str, float]]  # one run's history: a row per epoch
EPSILON = 1e-12  # thresholds are decimal fractions: 0.57 * 100 is 56.99999999999999 in binary
# below_floor's rule in words (a run exactly at the floor is not trained either), for the report's prose
AT_FLOOR, NOT_ABOVE = "at or below", "does not beat"


@dataclass(frozen=True)
class Floor:
    """A study's trained floor: its value, and where it comes from (None: it could not be measured)."""

    value: float | None
    source: str


def study_floor(trained: Trained, study: str, test_acc1: Mapping[str, Sequence[float]]) -> Floor | None:
    """The floor of `study` (None if claims.yaml declares none): a number, or the seed mean of its baseline."""
    declared = trained.floors.get(study)
    if declared is None:
        return None
    if isinstance(declared, float | int):
        return Floor(float(declared), f"{declared:g}, declared")
    runs = test_acc1.get(declared)
    if not runs:
        return Floor(None, f"{declared} (not run)")
    return Floor(statistics.fmean(runs), f"{declared}, mean test top-1 of {len(runs)} seed{'s' * (len(runs) > 1)}")


def below_floor(floor: Floor, runs: Mapping[int, float]) -> list[int]:
    """The seeds whose test top-1 does not beat the floor."""
    assert floor.value is not None
    return sorted(seed for seed, acc1 in runs.items() if acc1 <= floor.value)


def trained_problem(floor: Floor | None, study: str, runs: Mapping[str, Mapping[int, float]]) -> str | None:
    """Why the runs of a claim (variant -> seed -> test top-1) are not all trained, or None."""
    if floor is None:
        return f"claims.yaml declares no trained floor for study {study}"
    if floor.value is None:
        return f"no trained floor: {floor.source}"
    failing = [f"{name} seed {seed} ({acc1[seed]:.4f})" for name, acc1 in runs.items()
               for seed in below_floor(floor, acc1)]
    if not failing:
        return None
    return f"not trained: {', '.join(failing)} {AT_FLOOR} the floor {floor.value:.4f} ({floor.source})"


@dataclass(frozen=True)
class OverfitMeasure:
    """The seed-mean curves' overfitting, measured; each `*_ok` against claims.yaml's threshold."""

    epochs: int
    seeds: int
    lowest_val_loss_epoch: int
    val_loss_rise: float  # last epoch's val loss / its minimum - 1
    train_val_gap: float  # last epoch's train top-1 - val top-1
    lowest_ok: bool
    rise_ok: bool
    gap_ok: bool

    @property
    def overfits(self) -> bool:
        return self.lowest_ok and self.rise_ok and self.gap_ok

    def describe(self, thresholds: Overfitting) -> str:
        latest = latest_epoch(thresholds, self.epochs)
        return (f"lowest mean validation loss at epoch {self.lowest_val_loss_epoch} of {self.epochs} "
                f"(needs ≤ {latest}), {self.val_loss_rise:+.1%} by the last epoch (needs ≥ "
                f"+{thresholds.val_loss_rise:.0%}), train − validation top-1 there {self.train_val_gap:+.3f} "
                f"(needs ≥ {thresholds.train_val_gap:g}); mean of {self.seeds} seed{'s' * (self.seeds > 1)}")


def latest_epoch(thresholds: Overfitting, epochs: int) -> int:
    """The last epoch at which the lowest validation loss still counts as well before the end."""
    return math.floor(thresholds.lowest_val_loss_by * epochs + EPSILON)


def mean_curve(curves: Sequence[Curve], key: str) -> list[float]:
    """The seed mean of one column, epoch by epoch (every run of a variant has the same epochs)."""
    lengths = {len(curve) for curve in curves}
    if len(lengths) != 1:
        raise ValueError(f"runs with different epoch counts: {sorted(lengths)}")
    return [statistics.fmean(curve[epoch][key] for curve in curves) for epoch in range(lengths.pop())]


def overfitting(curves: Sequence[Curve], thresholds: Overfitting) -> OverfitMeasure:
    """Measure the overfitting of a variant's seed-mean curves (earliest epoch on a tied minimum)."""
    val_loss = mean_curve(curves, "val_loss")
    lowest = min(range(len(val_loss)), key=val_loss.__getitem__)
    rise = val_loss[-1] / val_loss[lowest] - 1
    gap = mean_curve(curves, "train_acc1")[-1] - mean_curve(curves, "val_acc1")[-1]
    epochs = len(val_loss)
    return OverfitMeasure(epochs, len(curves), lowest + 1, rise, gap, lowest + 1 <= latest_epoch(thresholds, epochs),
                          rise >= thresholds.val_loss_rise - EPSILON, gap >= thresholds.train_val_gap - EPSILON)


def overfitting_problem(variant: str, measure: OverfitMeasure | None, thresholds: Overfitting) -> str | None:
    if measure is None:
        return f"{variant}, whose overfitting the claim needs, did not run"
    if measure.overfits:
        return None
    return f"{variant} does not overfit: {measure.describe(thresholds)}"
