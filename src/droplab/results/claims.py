"""claims.yaml: the published findings droplab checks, the regime each must be tested in, and
the thresholds of those regimes, declared (and committed) before the run that judges them.

A claim names a metric and an expected relation between variants ("A > B > C", "A ~ B",
"A > 1.5"). Its verdict (results.judge) counts only in its regime (results.regimes): every run
it compares reached its study's *trained* floor, and, for a claim about regularization, the
variant it names under `overfits` really overfits. Otherwise it is "not testable at this scale".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from droplab.config import Params
from droplab.errors import DroplabError
from droplab.metric_table import CLAIMABLE, LAYERWISE, SPLIT_METRICS, SPLITS, metric
from droplab.schema import PLAIN_NAME, Strict, first_repeated, problem_lines
from droplab.yaml_file import read_yaml


class ClaimsError(DroplabError):
    """A claims file problem, phrased for the person who edits that file."""


Relation = Literal[">", "<", "~"]
_OTHER_METRICS = [key for key in CLAIMABLE if key.partition(".")[0] not in SPLITS]
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_EXPECT_FORMS = "expected 'A > B [> C ...]', 'A < B [...]' or 'A ~ B'"


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
    if len(names) < 2 or not all(PLAIN_NAME.fullmatch(name) or _NUMBER.fullmatch(name) for name in names):
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
    study: str  # the params.yaml study it belongs to: its trained floor and its report section
    says: str
    metric: str
    expect: str
    tolerance: float = Field(0.01, gt=0, allow_inf_nan=False)
    # The same seed gives these variants the same training images, data order and (where the
    # shapes match) initial weights, so compare seed by seed (ttest_rel).
    paired: bool = False
    # A claim about regularization is tested only where this variant (the same model without
    # dropout) overfits: otherwise a regularizer can only slow learning.
    overfits: str | None = None

    @field_validator("metric")
    @classmethod
    def _metric(cls, name: str) -> str:
        """Any metric the runs record (droplab.metric_table), so that every accepted claim can be judged."""
        if name not in CLAIMABLE:
            raise ValueError(f"expected '<split>.<name>' with split in {'|'.join(SPLITS)} and name in "
                             f"{'|'.join(SPLIT_METRICS)}, or one of {'|'.join(_OTHER_METRICS)}")
        return name

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
        """Judged BN layer by BN layer (one series per layer, each on its own)."""
        return self.metric in LAYERWISE

    def mechanism(self) -> bool:
        """A claim on the BN analysis rather than on accuracy: its own family for Holm."""
        return metric(self.metric).mechanism


class Trained(Strict):
    """Every run a claim compares must beat its study's floor on test top-1: the mean test top-1
    of a baseline variant trained on the same images (a linear classifier), or a number."""

    floors: dict[str, str | float] = Field(min_length=1)


class Overfitting(Strict):
    """The seed-mean curves of a claim's `overfits` variant must show all three."""

    lowest_val_loss_by: float = Field(gt=0, le=1)  # lowest validation loss at or before this fraction of the epochs
    val_loss_rise: float = Field(gt=0)  # the last epoch's validation loss at least this much above it (relative)
    train_val_gap: float = Field(gt=0, le=1)  # the last epoch's train top-1 minus validation top-1, at least


class Regimes(Strict):
    trained: Trained
    overfitting: Overfitting


class Sensitivity(Strict):
    """The other readings each decided accuracy claim is recomputed on: after BN recalibration,
    and on test loss ("A ~ B" there within +-loss_tolerance)."""

    loss_tolerance: float = Field(gt=0)


class Checks(Strict):
    """Checks of the BN analysis itself (not claims): a failure is an error the report shows."""

    theory_gap: float = Field(gt=0)  # |measured D / theory - 1| at every BN that dropout feeds directly


class ClaimsFile(Strict):
    regimes: Regimes
    sensitivity: Sensitivity
    checks: Checks
    claims: list[Any]


def _parse_list(raw: Any, source: str) -> list[Claim]:
    """Validate the claims list; every problem in it is reported at once, by file, claim and field."""
    if not isinstance(raw, list):
        raise ClaimsError(f"{source}: claims: expected a list of claims, got {type(raw).__name__}")
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


@dataclass(frozen=True)
class Claims:
    """A loaded claims.yaml: the regimes' thresholds, the sensitivity readings, the BN checks, the claims."""

    regimes: Regimes
    sensitivity: Sensitivity
    checks: Checks
    claims: list[Claim]


def parse_claims(raw: Any, source: str) -> Claims:
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise ClaimsError(f"{source}: expected a mapping with keys {', '.join(ClaimsFile.model_fields)}, got {got}")
    try:
        top = ClaimsFile.model_validate(raw)
    except ValidationError as exc:
        raise ClaimsError("\n".join(f"{source}: {line}" for line in problem_lines(exc.errors(), ClaimsFile))) from None
    return Claims(top.regimes, top.sensitivity, top.checks, _parse_list(top.claims, source))


def load_claims(path: Path) -> Claims:
    return parse_claims(read_yaml(path, ClaimsError), str(path))


def check_claim_variants(claims: Claims, params: Params, claims_path: Path) -> None:
    """A claim may name a variant this config skips (it is then "not run"), never an unknown one;
    its study, its floor's baseline and its `overfits` variant must exist too."""
    known = set(params.variants) | set(params.skipped_variants)
    for claim in claims.claims:
        named = [*claim.variants(), *([claim.overfits] if claim.overfits else [])]
        unknown = [name for name in named if name not in known]
        if unknown:
            close = get_close_matches(unknown[0], sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ClaimsError(f"{claims_path}: claim {claim.id!r} names {unknown[0]!r}, which is neither in "
                              f"params.yaml variants nor in skipped_variants{hint}")
        if claim.study not in params.studies and not all(name in params.skipped_variants for name in named):
            raise ClaimsError(f"{claims_path}: claim {claim.id!r}: study {claim.study!r} is not in params.yaml "
                              f"studies ({', '.join(params.studies)})")
    for study, floor in claims.regimes.trained.floors.items():
        if study not in params.studies and not (isinstance(floor, str) and floor in params.skipped_variants):
            raise ClaimsError(f"{claims_path}: regimes.trained.floors.{study}: not a params.yaml study "
                              f"({', '.join(params.studies)})")
        if isinstance(floor, str) and floor not in known:
            raise ClaimsError(f"{claims_path}: regimes.trained.floors.{study}: {floor!r} is not in params.yaml "
                              "variants")
        if not isinstance(floor, str) and not 0 < floor < 1:
            raise ClaimsError(f"{claims_path}: regimes.trained.floors.{study}: {floor}: expected a test top-1 "
                              "between 0 and 1, or a baseline variant")
