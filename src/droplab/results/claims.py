"""Claims: findings of the published studies, checked against droplab's own seeds.

A claim names a metric and an expected relation between variants ("A > B > C", "A ~ B", "A > 1.5");
it is written in a YAML file the user can extend, and each gets a verdict from the seeds this run
produced. An undecided claim says how large a difference its seeds could have seen, and how many
seeds the observed one would need.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from droplab.errors import DroplabError
from droplab.results.stats import (
    EQUIVALENT,
    NOT_EQUIVALENT,
    StatsError,
    compare,
    compare_paired,
    compare_to,
    detectable_difference,
    equivalence,
    equivalence_seeds_needed,
    paired_sd,
    pooled_sd,
    seeds_needed,
    summarize,
)
from droplab.schema import Strict, first_repeated, problem_lines
from droplab.yaml_file import read_yaml

CONFIRMED = "confirmed"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive (within seed noise)"
NOT_RUN = "not run"
UNTRAINED = "not confirmable: rests on untrained runs"

EQUIVALENCE_CONFIDENCE = 0.90  # TOST at the 5% level: both one-sided tests, so the 90% interval
POWER = 0.80
MOST_SEEDS = 1000
NO_NOISE = "needs at least 2 seeds of each to estimate the seed noise"
_BY_TOST = {EQUIVALENT: CONFIRMED, NOT_EQUIVALENT: CONTRADICTED}


class ClaimsError(DroplabError):
    """A claims file problem, phrased for the person who edits that file."""


Relation = Literal[">", "<", "~"]
SPLITS = ("train", "val", "test")
METRICS = ("loss", "acc1", "acc5", "f1_macro")
BN_METRICS = ("dropout_variance_ratio", "theory_gap", "recal_gain", "recal_gain_vs_twin")
LAYERWISE = ("dropout_variance_ratio", "theory_gap")  # one series per BN layer, each judged on its own
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_EXPECT_FORMS = "expected 'A > B [> C ...]', 'A < B [...]' or 'A ~ B'"

Series = Sequence[float]
Values = Mapping[str, Series | Mapping[str, Series]]


@dataclass(frozen=True)
class Expectation:
    """The parsed `expect` of a claim: one relation between adjacent variants of a chain, or between
    one variant and a constant (then `variants` has one name)."""

    relation: Relation
    variants: tuple[str, ...]
    constant: float | None = None


def _constant(names: list[str]) -> float | None:
    """The numeric second term of 'A > 1.5'; a number anywhere else is a mistake worth naming."""
    numbers = [i for i, name in enumerate(names) if _NUMBER.fullmatch(name)]
    if not numbers:
        return None
    if numbers != [1] or len(names) != 2:
        raise ValueError(f"a number compares with exactly one variant, after it: 'A > 1.5', 'A < 0.1' or 'A ~ 0'; "
                         f"got {names[numbers[0]]!r} as term {numbers[0] + 1} of {len(names)}")
    value = float(names[1])
    if not math.isfinite(value):
        raise ValueError(f"number {names[1]!r}: expected a finite number")
    return value


def parse_expect(text: str) -> Expectation:
    """'a > b > c' -> Expectation('>', ('a', 'b', 'c')); 'a ~ 0' -> Expectation('~', ('a',), 0.0);
    ValueError says what is wrong."""
    parts = re.split(r"\s*([<>~])\s*", text.strip())
    names, relations = parts[::2], set(parts[1::2])
    if len(names) < 2 or not all(_NAME.fullmatch(name) or _NUMBER.fullmatch(name) for name in names):
        raise ValueError(_EXPECT_FORMS)
    if len(relations) > 1:
        raise ValueError(f"mixes {' and '.join(repr(r) for r in sorted(relations))}; {_EXPECT_FORMS}")
    relation = relations.pop()
    if relation == "~" and len(names) != 2:
        raise ValueError("'~' compares exactly two variants: 'A ~ B'")
    constant = _constant(names)
    if constant is not None:
        return Expectation(relation, (names[0],), constant)  # type: ignore[arg-type]
    if (repeated := first_repeated(names)) is not None:
        raise ValueError(f"variant {repeated!r} appears more than once")
    return Expectation(relation, tuple(names))  # type: ignore[arg-type]


class Claim(Strict):
    """One published finding, checkable against this run's per-seed metrics."""

    id: str = Field(min_length=1)
    study: str
    says: str
    metric: str
    expect: str
    tolerance: float = Field(0.01, gt=0, allow_inf_nan=False)
    # The same seed gives the same data order and initial weights in these variants, so compare
    # seed by seed (ttest_rel): the seed's own luck cancels out of each difference.
    paired: bool = False

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric: str) -> str:
        split, _, name = metric.partition(".")
        if split == "bn" and name in BN_METRICS:
            return metric
        if split not in SPLITS or name not in METRICS:
            raise ValueError(f"expected '<split>.<name>' with split in {'|'.join(SPLITS)} "
                             f"and name in {'|'.join(METRICS)}, or 'bn.<name>' with name in {'|'.join(BN_METRICS)}")
        return metric

    @field_validator("expect")
    @classmethod
    def _expect(cls, expect: str) -> str:
        parse_expect(expect)
        return expect

    @model_validator(mode="after")
    def _tolerance_only_for_alike(self) -> Claim:
        # A tolerance on '>' or '<' would silently do nothing; the author surely meant something by it.
        if "tolerance" in self.model_fields_set and self.expectation().relation != "~":
            raise ValueError(f"tolerance is only used by 'A ~ B' claims, not by expect {self.expect!r}")
        return self

    @model_validator(mode="after")
    def _paired_needs_two_variants(self) -> Claim:
        if self.paired and self.expectation().constant is not None:
            raise ValueError(f"paired compares variants seed by seed; expect {self.expect!r} has one variant "
                             f"and a number")
        return self

    def expectation(self) -> Expectation:
        return parse_expect(self.expect)

    def variants(self) -> list[str]:
        return list(self.expectation().variants)

    def layerwise(self) -> bool:
        split, _, name = self.metric.partition(".")
        return split == "bn" and name in LAYERWISE


def parse_claims(raw: Any, source: str) -> list[Claim]:
    """Validate a loaded claims list; every problem in it is reported at once, by file, claim and field."""
    if not isinstance(raw, list):
        got = "an empty file" if raw is None else type(raw).__name__
        raise ClaimsError(f"{source}: expected a list of claims, got {got}")
    claims: list[Claim] = []
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    for position, item in enumerate(raw, start=1):
        named = isinstance(item, dict) and isinstance(item.get("id"), str)
        who = f"claim {item['id']!r}" if named else f"list item {position}"
        if not isinstance(item, dict):
            problems.append(f"{source}: {who}: expected a mapping with keys {', '.join(Claim.model_fields)}, "
                            f"got {type(item).__name__}")
            continue
        if named:
            if item["id"] in first_seen:
                problems.append(f"{source}: {who}: id is used twice (list items {first_seen[item['id']]} "
                                f"and {position}); ids must be unique")
            first_seen.setdefault(item["id"], position)
        try:
            claims.append(Claim.model_validate(item))
        except ValidationError as exc:
            problems.extend(f"{source}: {who}: {line}" for line in problem_lines(exc.errors(), Claim))
    if problems:
        raise ClaimsError("\n".join(problems))
    return claims


def load_claims(path: Path) -> list[Claim]:
    return parse_claims(read_yaml(path, ClaimsError), str(path))


@dataclass(frozen=True)
class ClaimResult:
    """A claim's verdict, with the numbers behind it in a form a report can print as is.

    detectable and seeds_needed are set for inconclusive verdicts only: for '>'/'<' the smallest
    difference these seeds detect with 80% power and the seeds the observed difference needs; for
    '~' the 90% interval's half-width and the seeds that would confirm ±tolerance."""

    id: str
    study: str
    says: str
    metric: str
    expect: str
    numbers: str
    verdict: str
    detail: str
    paired: bool
    detectable: float | None
    seeds_needed: int | None


@dataclass(frozen=True)
class _Power:
    """Why a step stayed undecided, in numbers; `rank` orders the steps by how far from decided."""

    sentence: str
    detectable: float | None
    seeds_needed: int | None

    def rank(self) -> tuple[bool, bool, int]:
        return self.detectable is None, self.seeds_needed is None, self.seeds_needed or 0


@dataclass(frozen=True)
class _Step:
    """One judged pair (of one BN layer, for layerwise metrics)."""

    where: str
    verdict: str
    text: str
    power: _Power | None


@dataclass(frozen=True)
class _Pair:
    """Two sides of one step: b is a variant's seeds, or the claim's constant (then b_name is None)."""

    a_name: str
    b_name: str | None
    a: list[float]
    b: list[float] | float
    paired: bool

    def label(self) -> str:
        return f"{self.a_name} - {self.b_name or f'{self.b:g}'}"

    def seed_sd(self) -> float | None:
        """The noise this design faces: SD of seed differences, of a alone, or pooled over both."""
        if isinstance(self.b, float):
            return summarize(self.a).sd
        return paired_sd(self.a, self.b) if self.paired else pooled_sd(self.a, self.b)

    def one_series(self) -> bool:
        """Paired and one-sample designs share their power maths: n values of one series."""
        return self.paired or isinstance(self.b, float)

    def seeds(self) -> str:
        if self.one_series() or len(self.a) == len(self.b):
            return str(len(self.a))
        return f"{len(self.a)} and {len(self.b)}"


def _number(values: Series | None, confidence: float) -> str:
    if not values:
        return "not run"
    summary = summarize(values, confidence)
    if summary.ci_high is None:
        return f"{summary.mean:.3f} (n=1)"
    return f"{summary.mean:.3f} ± {summary.ci_high - summary.mean:.3f} (n={summary.n})"


def _layers_number(by_layer: Mapping[str, Series], layers: list[str]) -> str:
    """A layerwise variant in one figure: the mean over layers of each layer's seed mean."""
    layers = [layer for layer in layers if by_layer.get(layer)]
    if not layers:
        return "not run"
    mean = statistics.fmean(statistics.fmean(by_layer[layer]) for layer in layers)
    return f"{mean:.3f} (mean over {len(layers)} BN layer{'s' if len(layers) > 1 else ''})"


def _verdict(relation: Relation, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return INCONCLUSIVE
    if relation == "<":
        low, high = -high, -low
    if low > 0:
        return CONFIRMED
    return CONTRADICTED if high < 0 else INCONCLUSIVE


def _difference_power(pair: _Pair, difference: float, confidence: float) -> _Power:
    """'>'/'<': what the seeds would detect, and what the observed difference would take."""
    sd, alpha = pair.seed_sd(), 1 - confidence
    size = detectable_difference(sd, len(pair.a), None if pair.one_series() else len(pair.b), pair.one_series(),
                                 alpha, POWER)
    if size is None:
        return _Power(NO_NOISE, None, None)
    needed = seeds_needed(sd, difference, pair.one_series(), alpha, POWER, MOST_SEEDS)
    if needed is not None:
        cost = f"deciding the observed difference of {difference:+.4f} needs ≈ {needed} seeds"
    elif difference == 0:
        cost = "no seed count would decide a difference of 0"
    else:
        cost = f"deciding the observed difference of {difference:+.4f} needs more than {MOST_SEEDS} seeds"
    return _Power(f"underpowered: with {pair.seeds()} seeds it would detect ≥ {size:.4f} ({POWER:.0%} power); "
                  f"{cost}", size, needed)


def _equivalence_power(pair: _Pair, difference: float, half: float, tolerance: float) -> _Power:
    """'~': how wide the interval is, and how many seeds would fit it inside ±tolerance."""
    needed = equivalence_seeds_needed(pair.seed_sd(), difference, tolerance, pair.one_series(),
                                      EQUIVALENCE_CONFIDENCE, MOST_SEEDS)
    if needed is not None:
        cost = f"confirming ±{tolerance:g} needs ≈ {needed} seeds"
    elif abs(difference) >= tolerance:
        cost = f"±{tolerance:g} cannot be confirmed: the observed difference {difference:+.4f} is not inside it"
    else:
        cost = f"confirming ±{tolerance:g} needs more than {MOST_SEEDS} seeds"
    return _Power(f"underpowered: the {EQUIVALENCE_CONFIDENCE:.0%} interval spans ±{half:.4f}; {cost}",
                  half, needed)


def _interval(low: float, high: float, compact: bool) -> str:
    return f"[{low:+.3g}, {high:+.3g}]" if compact else f"[{low:+.4f}, {high:+.4f}]"


def _judge(claim: Claim, pair: _Pair, where: str, confidence: float, compact: bool) -> _Step:
    """One pair's verdict, its difference and interval as text, and its power if undecided."""
    relation = claim.expectation().relation
    if pair.paired and len(pair.a) != len(pair.b):
        text = f"paired needs equal seed counts: {pair.a_name} has {len(pair.a)}, {pair.b_name} has {len(pair.b)}"
        return _Step(where, INCONCLUSIVE, f"{where}: {text}" if compact else text, None)
    if relation == "~":
        tost = equivalence(pair.a, pair.b, claim.tolerance, pair.paired, EQUIVALENCE_CONFIDENCE)
        difference, low, high, level = tost.difference, tost.ci_low, tost.ci_high, EQUIVALENCE_CONFIDENCE
        verdict = _BY_TOST.get(tost.verdict, INCONCLUSIVE)
    else:
        if isinstance(pair.b, float):
            comparison = compare_to(pair.a, pair.b, confidence)
        else:
            comparison = (compare_paired if pair.paired else compare)(pair.a, pair.b, confidence)
        difference, low, high, level = comparison.difference, comparison.ci_low, comparison.ci_high, confidence
        verdict = _verdict(relation, low, high)
    head = f"{where}: {difference:+.3g}" if compact else f"{pair.label()} = {difference:+.4f}"
    if low is None or high is None:
        return _Step(where, verdict, f"{head}, no interval with one seed", _Power(NO_NOISE, None, None))
    power = None
    if verdict == INCONCLUSIVE:
        power = (_equivalence_power(pair, difference, (high - low) / 2, claim.tolerance) if relation == "~"
                 else _difference_power(pair, difference, confidence))
    if compact:
        return _Step(where, verdict, f"{head} {_interval(low, high, True)}", power)
    kind = "paired " if pair.paired else ""
    return _Step(where, verdict, f"{head}, {kind}{level:.0%} CI {_interval(low, high, False)}", power)


def _check_shape(claim: Claim, values: Values) -> None:
    """Per-layer values for a layerwise metric, one series otherwise: a mix-up is the caller's bug."""
    for name in claim.variants():
        given = values.get(name)
        if given and claim.layerwise() != isinstance(given, Mapping):
            expected = "a mapping of BN layer -> one value per seed" if claim.layerwise() else "one value per seed"
            raise ClaimsError(f"claim {claim.id!r} ({claim.metric}): values for {name!r}: expected {expected}, "
                              f"got {type(given).__name__}")


def _by_layer(claim: Claim, values: Values) -> dict[str, Mapping[str, Series]]:
    """variant -> layer -> per-seed values, for the claim's variants; a scalar metric is one layer ""."""
    return {name: values[name] if claim.layerwise() else {"": values[name]} for name in claim.variants()}


def _steps(claim: Claim, by_layer: dict[str, Mapping[str, Series]], layers: list[str],
           confidence: float) -> list[_Step]:
    expectation = claim.expectation()
    names = expectation.variants
    chain = [(names[0], None)] if expectation.constant is not None else list(pairwise(names))
    steps = []
    for layer in layers:
        for a, b in chain:
            other = expectation.constant if b is None else [float(v) for v in by_layer[b][layer]]
            pair = _Pair(a, b, [float(v) for v in by_layer[a][layer]], other, claim.paired)
            # where a step's power sentence and layer entry say it belongs
            where = layer if len(chain) == 1 else f"{layer} {pair.label()}" if layer else pair.label()
            steps.append(_judge(claim, pair, where, confidence, claim.layerwise()))
    return steps


def _untrained(names: Sequence[str], untrained: Mapping[str, Sequence[int]] | None) -> str | None:
    """'untrained: a seed 0 and b seeds 1, 2', naming the runs that ended near chance."""
    named = [(name, sorted(untrained[name])) for name in names if untrained and untrained.get(name)]
    if not named:
        return None
    return "untrained: " + " and ".join(f"{name} seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
                                        for name, seeds in named)


def _body(claim: Claim, steps: list[_Step], confidence: float) -> str:
    """The steps' differences and intervals: in full for a scalar metric, compactly per BN layer."""
    joined = "; ".join(step.text for step in steps)
    if not claim.layerwise():
        return joined
    expectation = claim.expectation()
    level = EQUIVALENCE_CONFIDENCE if expectation.relation == "~" else confidence
    names = expectation.variants
    what = (f"{names[0]} - {expectation.constant:g}" if expectation.constant is not None
            else f"{names[0]} - {names[1]}" if len(names) == 2 else "differences")
    kind = "paired " if claim.paired else ""
    return f"{what} per BN layer, {kind}{level:.0%} CI: {joined}"


def _judged(claim: Claim, values: Values, confidence: float) -> tuple[str, str, _Power | None]:
    """verdict, detail and the headline power of a claim whose variants all have values."""
    by_layer = _by_layer(claim, values)
    names = claim.variants()
    layers = [layer for layer in by_layer[names[0]] if all(by_layer[name].get(layer) for name in names)]
    if not layers:
        return NOT_RUN, f"no BN layer is common to {', '.join(names)}", None
    steps = _steps(claim, by_layer, layers, confidence)
    verdicts = {step.verdict for step in steps}
    verdict = CONTRADICTED if CONTRADICTED in verdicts else CONFIRMED if verdicts == {CONFIRMED} else INCONCLUSIVE
    parts = [_body(claim, steps, confidence)]
    if claim.expectation().relation == "~":
        parts.append(f"tolerance ±{claim.tolerance:g}")
    power = None
    if verdict == INCONCLUSIVE:
        undecided = [step for step in steps if step.verdict == INCONCLUSIVE and step.power]
        if undecided:
            worst = max(undecided, key=lambda step: step.power.rank())
            power = worst.power
            parts.append(f"{worst.where}: {power.sentence}" if len(steps) > 1 else power.sentence)
    return verdict, "; ".join(parts), power


def _numbers(claim: Claim, values: Values, confidence: float) -> str:
    expectation = claim.expectation()
    if claim.layerwise():
        given: dict[str, Mapping[str, Series]] = {name: values.get(name) or {} for name in expectation.variants}
        common = [layer for layer in given[expectation.variants[0]] if all(given[name].get(layer) for name in given)]
        terms = [_layers_number(by_layer, common or list(by_layer)) for by_layer in given.values()]
    else:
        terms = [_number(values.get(name), confidence) for name in expectation.variants]
    if expectation.constant is not None:
        terms.append(f"{expectation.constant:g}")
    return f" {expectation.relation} ".join(terms)


def evaluate(claim: Claim, values: Values, confidence: float = 0.95,
             untrained: Mapping[str, Sequence[int]] | None = None) -> ClaimResult:
    """Judge a claim from `values`: variant -> the claim's metric over seeds, or for LAYERWISE metrics
    variant -> BN layer -> over seeds. `untrained`: variant -> seeds that ended near chance; a
    confirmation resting on them is withheld (UNTRAINED)."""
    names = claim.variants()
    power = None
    _check_shape(claim, values)
    try:
        numbers = _numbers(claim, values, confidence)
        missing = [name for name in names if not values.get(name)]
        if missing:
            verdict, detail = NOT_RUN, f"no {claim.metric} values for {', '.join(missing)}"
        else:
            verdict, detail, power = _judged(claim, values, confidence)
    except StatsError as exc:
        raise StatsError(f"claim {claim.id!r} ({claim.metric}): {exc}") from None
    note = _untrained(names, untrained)
    if note:
        verdict = UNTRAINED if verdict == CONFIRMED else verdict
        detail = f"{detail}; {note}"
    return ClaimResult(claim.id, claim.study, claim.says, claim.metric, claim.expect, numbers, verdict, detail,
                       claim.paired, power.detectable if power else None, power.seeds_needed if power else None)
