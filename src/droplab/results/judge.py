"""One claim against the seeds this run produced: its differences with intervals, its p-value,
P(A > B) over seeds, and, when undecided, what its seeds could have seen.

A chain "A > B > C" is judged pair by pair (and a BN-layer claim layer by layer); it is confirmed
only if every step is, so its p-value is the largest step's (an intersection-union test), and
it is contradicted when a step goes the other way (that step's p, Bonferroni over the steps).
The verdict here is before the family-wise adjustment that results.verdicts applies.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from droplab.results.claims import Claim, ClaimsError
from droplab.results.power import detectable_difference, noise_sd, seeds_needed, tost_power, tost_seeds_for_power
from droplab.results.stats import (
    PAIRED,
    WELCH,
    StatsError,
    beyond_tolerance_p,
    choose_test,
    compare_with,
    equivalence,
    prob_superiority,
)
from droplab.results.verdict_words import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_RUN

ALPHA = 0.05  # every test's level: 95% intervals for '>' and '<', TOST's 90% interval for '~'
POWER = 0.80
MOST_SEEDS = 1000
NO_NOISE = "needs at least 2 seeds of each to estimate the seed noise"

Series = Sequence[float]
SeedValues = Mapping[str, Series]  # variant -> one value per seed
LayerValues = Mapping[str, Mapping[str, Series]]  # variant -> BN layer -> one value per seed


@dataclass(frozen=True)
class Step:
    """One judged pair (of one BN layer, for a layerwise claim); b is None against the claim's number."""

    where: str
    difference: float
    ci_low: float | None
    ci_high: float | None
    right_way: bool  # the estimate goes the way the claim expects
    p_value: float | None  # '>'/'<': two-sided t-test; '~': TOST, or the beyond-tolerance test if outside
    superiority: float | None  # P(A > B) over seeds
    power: str | None  # why it stays undecided, in numbers
    detectable: float | None
    seeds_needed: int | None


@dataclass(frozen=True)
class Judgement:
    verdict: str  # before the family-wise adjustment
    direction: str | None  # "confirm" or "contradict": which way the p-value points
    p_value: float | None
    numbers: str  # the observed relation of the seed means
    difference: str  # each step's difference and interval
    superiority: str  # P(A > B) per step
    power: str | None
    detectable: float | None
    seeds_needed: int | None
    steps: list[Step]


def _seed_power(a: Series, b: Series | float, paired: bool, difference: float) -> tuple[str, float | None, int | None]:
    """'>'/'<': the smallest difference these seeds detect (80% power), and the seeds the observed one needs."""
    one_series = choose_test(b, paired) != WELCH
    sd = noise_sd(a, b, paired)
    size = detectable_difference(sd, len(a), None if one_series else len(b), one_series, ALPHA, POWER)
    if size is None:
        return NO_NOISE, None, None
    needed = seeds_needed(sd, difference, one_series, ALPHA, POWER, MOST_SEEDS)
    cost = (f"the observed difference of {difference:+.4f} needs ≈ {needed} seeds for {POWER:.0%} power"
            if needed is not None else "no seed count would decide a difference of 0" if difference == 0
            else f"the observed difference of {difference:+.4f} needs more than {MOST_SEEDS} seeds")
    return (f"with {len(a)} seeds it would detect ≥ {size:.4f} with {POWER:.0%} power; {cost}", size, needed)


def _tost_power(a: Series, b: Series | float, paired: bool, difference: float,
                tolerance: float) -> tuple[str, float | None, int | None]:
    """'~': TOST's power with these seeds at a true difference of 0 and at the observed one."""
    one_series = choose_test(b, paired) != WELCH
    sd = noise_sd(a, b, paired)
    at_zero = tost_power(sd, len(a), 0.0, tolerance, one_series, ALPHA)
    if at_zero is None:
        return NO_NOISE, None, None
    at_observed = tost_power(sd, len(a), difference, tolerance, one_series, ALPHA) or 0.0
    needed = tost_seeds_for_power(sd, 0.0, tolerance, one_series, ALPHA, POWER, MOST_SEEDS)
    cost = f"{POWER:.0%} at ≈ {needed} seeds" if needed else f"{POWER:.0%} needs more than {MOST_SEEDS} seeds"
    return (f"with {len(a)} seeds, TOST at ±{tolerance:g} confirms a true difference of 0 with {at_zero:.0%} power "
            f"({cost}), and the observed {difference:+.4f} with {at_observed:.0%}", None, needed)


def judge_step(claim: Claim, a: Series, b: Series | float, where: str) -> Step:
    expectation = claim.expectation()
    paired = choose_test(b, claim.paired) == PAIRED
    if paired and len(a) != len(b):
        raise StatsError(f"{where}: paired needs equal seed counts, got {len(a)} and {len(b)}")
    superiority = prob_superiority(a, b, paired)
    if expectation.relation == "~":
        tost = equivalence(a, b, claim.tolerance, paired, 1 - 2 * ALPHA)
        difference, low, high = tost.difference, tost.ci_low, tost.ci_high
        right_way = abs(difference) < claim.tolerance
        p_value = tost.p_value if right_way else beyond_tolerance_p(a, b, claim.tolerance, paired)
        if p_value is None and low is not None:  # no seed noise: the difference alone decides
            p_value = 0.0
    else:
        comparison = compare_with(a, b, paired, 1 - ALPHA)
        difference, low, high = comparison.difference, comparison.ci_low, comparison.ci_high
        right_way = difference > 0 if expectation.relation == ">" else difference < 0
        p_value = comparison.p_value
        if p_value is None and low is not None:
            p_value = 0.0 if difference != 0 else 1.0
    decided = p_value is not None and p_value < ALPHA
    power, detectable, needed = None, None, None
    if not decided:
        power, detectable, needed = (_tost_power(a, b, paired, difference, claim.tolerance)
                                     if expectation.relation == "~" else _seed_power(a, b, paired, difference))
    return Step(where, difference, low, high, right_way, p_value, superiority, power, detectable, needed)


def _mean_text(values: Series | Mapping[str, Series] | None, layers: list[str]) -> float | None:
    if not values:
        return None
    if isinstance(values, Mapping):
        present = [layer for layer in layers if values.get(layer)]
        return statistics.fmean(statistics.fmean(values[layer]) for layer in present) if present else None
    return statistics.fmean(values)


def observed(claim: Claim, values: Mapping, layers: list[str]) -> str:
    """The seed means with the relation they actually have: '0.812 < 0.815'."""
    expectation = claim.expectation()
    means = [_mean_text(values.get(name), layers) for name in expectation.variants]
    if expectation.constant is not None:
        means.append(expectation.constant)
    if any(mean is None for mean in means):
        return " ? ".join("not run" if mean is None else f"{mean:.4g}" for mean in means)
    text = f"{means[0]:.4f}"
    for before, after in pairwise(means):
        text += f" {'>' if before > after else '<' if before < after else '='} {after:.4f}"
    suffix = f" (mean over {len(layers)} BN layers)" if claim.layerwise() else ""
    return text + suffix


def _steps(claim: Claim, values: Mapping, layers: list[str]) -> list[Step]:
    expectation = claim.expectation()
    names = expectation.variants
    chain = [(names[0], None)] if expectation.constant is not None else list(pairwise(names))
    steps = []
    for layer in layers:
        for a, b in chain:
            series_a = values[a][layer] if layer else values[a]
            other = expectation.constant if b is None else (values[b][layer] if layer else values[b])
            label = f"{a} - {b if b is not None else f'{expectation.constant:g}'}"
            where = layer if (layer and len(chain) == 1) else f"{layer} {label}".strip()
            steps.append(judge_step(claim, [float(v) for v in series_a],
                                    other if b is None else [float(v) for v in other], where))
    return steps


def _claim_p(steps: list[Step]) -> tuple[str | None, float | None]:
    """Which way the evidence points and the claim's p: the largest step p when every step goes
    the expected way (all must hold), else the strongest wrong-way step's, times the step count."""
    if any(step.p_value is None for step in steps):
        return None, None
    if all(step.right_way for step in steps):
        return "confirm", max(step.p_value for step in steps)  # type: ignore[type-var]
    wrong = min(step.p_value for step in steps if not step.right_way)  # type: ignore[type-var]
    return "contradict", min(1.0, wrong * len(steps))


def verdict_for(direction: str | None, p_value: float | None) -> str:
    if direction is None or p_value is None or p_value >= ALPHA:
        return INCONCLUSIVE
    return CONFIRMED if direction == "confirm" else CONTRADICTED


def _interval(step: Step, claim: Claim) -> str:
    if step.ci_low is None or step.ci_high is None:
        return f"{step.where}: {step.difference:+.4f}, no interval with one seed"
    level = f"{1 - 2 * ALPHA:.0%}" if claim.expectation().relation == "~" else f"{1 - ALPHA:.0%}"
    kind = f"{PAIRED} " if claim.paired and claim.expectation().constant is None else ""
    return f"{step.where} = {step.difference:+.4f}, {kind}{level} CI [{step.ci_low:+.4f}, {step.ci_high:+.4f}]"


def judge(claim: Claim, values: SeedValues | LayerValues) -> Judgement:
    """The claim on `values` (variant -> per-seed values; for layerwise metrics variant -> BN layer ->
    per-seed values), every variant present."""
    names = claim.variants()
    for name in names:
        if claim.layerwise() != isinstance(values[name], Mapping):
            expected = "a mapping of BN layer -> one value per seed" if claim.layerwise() else "one value per seed"
            raise ClaimsError(f"claim {claim.id!r} ({claim.metric}): values for {name!r}: expected {expected}")
    layers = ([layer for layer in values[names[0]] if all(values[name].get(layer) for name in names)]
              if claim.layerwise() else [""])
    if not layers:
        return Judgement(NOT_RUN, None, None, observed(claim, values, []), f"no BN layer is common to "
                         f"{', '.join(names)}", "", None, None, None, [])
    try:
        steps = _steps(claim, values, layers)
    except StatsError as exc:
        raise StatsError(f"claim {claim.id!r} ({claim.metric}): {exc}") from None
    direction, p_value = _claim_p(steps)
    undecided = [step for step in steps if step.power]
    worst = max(undecided, key=lambda step: (step.p_value is None, step.p_value or 0.0)) if undecided else None
    shown = steps if len(steps) <= 4 else [step for step in steps if step is worst] or steps[:1]
    difference = "; ".join(_interval(step, claim) for step in shown)
    if len(shown) < len(steps):
        difference += f"; {len(steps) - len(shown)} more steps in report/stats.json"
    scored = [step for step in steps if step.superiority is not None and not claim.layerwise()]
    superiority = (f"{scored[0].superiority:.2f}" if len(scored) == 1
                   else "; ".join(f"{step.where}: {step.superiority:.2f}" for step in scored))
    power = (f"{worst.where}: {worst.power}" if len(steps) > 1 else worst.power) if worst and worst.power else None
    return Judgement(verdict_for(direction, p_value), direction, p_value, observed(claim, values, layers), difference,
                     superiority, power, worst.detectable if worst else None, worst.seeds_needed if worst else None,
                     steps)
