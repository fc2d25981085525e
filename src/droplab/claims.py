"""Claims: findings of the published studies, checked against droplab's own seeds.

A claim names a metric and an expected relation between variants ("A > B > C", "A ~ B"); it is
written in a YAML file the user can extend, and each gets a verdict from the seeds this run produced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from droplab.errors import DroplabError
from droplab.stats import Comparison, StatsError, compare, summarize
from droplab.yaml_file import read_yaml

CONFIRMED = "confirmed"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive (within seed noise)"
NOT_RUN = "not run"


class ClaimsError(DroplabError):
    """A claims file problem, phrased for the person who edits that file."""


Relation = Literal[">", "<", "~"]
SPLITS = ("train", "val", "test")
METRICS = ("loss", "acc1", "acc5", "f1_macro")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_EXPECT_FORMS = "expected 'A > B [> C ...]', 'A < B [...]' or 'A ~ B'"


@dataclass(frozen=True)
class Expectation:
    """The parsed `expect` of a claim: one relation between adjacent variants of a chain."""

    relation: Relation
    variants: tuple[str, ...]


def parse_expect(text: str) -> Expectation:
    """'a > b > c' -> Expectation('>', ('a', 'b', 'c')); ValueError says what is wrong."""
    parts = re.split(r"\s*([<>~])\s*", text.strip())
    names, relations = parts[::2], set(parts[1::2])
    if len(names) < 2 or not all(_NAME.fullmatch(name) for name in names):
        raise ValueError(_EXPECT_FORMS)
    if len(relations) > 1:
        raise ValueError(f"mixes {' and '.join(repr(r) for r in sorted(relations))}; {_EXPECT_FORMS}")
    relation = relations.pop()
    if relation == "~" and len(names) != 2:
        raise ValueError("'~' compares exactly two variants: 'A ~ B'")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"variant {repeated[0]!r} appears more than once")
    return Expectation(relation, tuple(names))  # type: ignore[arg-type]


class Claim(BaseModel):
    """One published finding, checkable against this run's per-seed metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str = Field(min_length=1)
    study: str
    says: str
    metric: str
    expect: str
    tolerance: float = Field(0.01, gt=0, allow_inf_nan=False)

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric: str) -> str:
        split, _, name = metric.partition(".")
        if split not in SPLITS or name not in METRICS:
            raise ValueError(f"expected '<split>.<name>' with split in {'|'.join(SPLITS)} "
                             f"and name in {'|'.join(METRICS)}")
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

    def expectation(self) -> Expectation:
        return parse_expect(self.expect)

    def variants(self) -> list[str]:
        return list(self.expectation().variants)


def _where(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown key {field!r}; allowed: {', '.join(Claim.model_fields)}"
    if error["type"] == "missing":
        return f"{field}: missing"
    if not field:  # a model-level check; its message names the field
        return message
    return f"{field} {error['input']!r}: {message}"


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
            problems.extend(f"{source}: {who}: {_where(error)}" for error in exc.errors())
    if problems:
        raise ClaimsError("\n".join(problems))
    return claims


def load_claims(path: Path) -> list[Claim]:
    return parse_claims(read_yaml(path, ClaimsError), str(path))


@dataclass(frozen=True)
class ClaimResult:
    """A claim's verdict, with the numbers behind it in a form a report can print as is."""

    id: str
    study: str
    says: str
    metric: str
    expect: str
    numbers: str
    verdict: str
    detail: str


def _number(values: Sequence[float] | None, confidence: float) -> str:
    if not values:
        return "not run"
    summary = summarize(values, confidence)
    if summary.ci_high is None:
        return f"{summary.mean:.3f} (n=1)"
    return f"{summary.mean:.3f} ± {summary.ci_high - summary.mean:.3f} (n={summary.n})"


def _difference(a: str, b: str, comparison: Comparison, confidence: float) -> str:
    if comparison.ci_low is None or comparison.ci_high is None:
        return f"{a} vs {b}: needs at least 2 seeds of each"
    return (f"{a} - {b} = {comparison.difference:+.4f}, {confidence:.0%} CI "
            f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}]")


def _pair_verdict(relation: Relation, comparison: Comparison, tolerance: float) -> str:
    low, high = comparison.ci_low, comparison.ci_high
    if low is None or high is None:
        return INCONCLUSIVE
    if relation == "~":
        if -tolerance <= low and high <= tolerance:
            return CONFIRMED
        return CONTRADICTED if low > tolerance or high < -tolerance else INCONCLUSIVE
    if relation == "<":
        low, high = -high, -low
    if low > 0:
        return CONFIRMED
    return CONTRADICTED if high < 0 else INCONCLUSIVE


def evaluate(claim: Claim, values: Mapping[str, Sequence[float]], confidence: float = 0.95) -> ClaimResult:
    """Judge a claim from `values` (variant -> that claim's metric over seeds), pair by adjacent pair."""
    expectation = claim.expectation()
    names = expectation.variants
    try:
        numbers = f" {expectation.relation} ".join(_number(values.get(name), confidence) for name in names)
        missing = [name for name in names if not values.get(name)]
        if missing:
            verdict, detail = NOT_RUN, f"no {claim.metric} values for {', '.join(missing)}"
        else:
            pairs = [(a, b, compare(values[a], values[b], confidence)) for a, b in pairwise(names)]
            verdicts = {_pair_verdict(expectation.relation, c, claim.tolerance) for _, _, c in pairs}
            verdict = (CONTRADICTED if CONTRADICTED in verdicts
                       else CONFIRMED if verdicts == {CONFIRMED} else INCONCLUSIVE)
            detail = "; ".join(_difference(a, b, c, confidence) for a, b, c in pairs)
            if expectation.relation == "~":
                detail += f"; tolerance ±{claim.tolerance:g}"
    except StatsError as exc:
        raise StatsError(f"claim {claim.id!r} ({claim.metric}): {exc}") from None
    return ClaimResult(claim.id, claim.study, claim.says, claim.metric, claim.expect, numbers, verdict, detail)
