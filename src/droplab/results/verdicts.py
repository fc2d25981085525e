"""From judged claims to verdicts: the regime gate, family-wise control, and how fragile each
decided verdict is.

- A claim whose regime is not reached reads "not testable at this scale: <why, in numbers>".
- The tested claims form two families, the published findings (seed claims) and the BN
  mechanism claims; within each, Holm adjusts the p-values, and the verdict follows the
  adjusted p.
- A decided accuracy claim is read twice more, after BN recalibration and on test loss, at
  the same adjusted level; a verdict that either reading changes is marked fragile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from droplab.results.claims import Claim
from droplab.results.judge import Judgement, verdict_for
from droplab.results.stats import holm
from droplab.results.verdict_words import DECIDED, NOT_RUN

FRAGILE = "fragile"
# the other readings of an accuracy claim: (name, how to read the claim there)
READINGS = ("after BN recalibration", "on test loss")


@dataclass
class Row:
    """One claim's line in the report and in report/stats.json."""

    claim: Claim
    names: list[str]  # the variants it compares, each resolved (a swept variant: its selected rate's label)
    judgement: Judgement | None  # None: not run, or not in its regime
    regime: str  # "reached", or why not
    verdict: str = NOT_RUN
    p_holm: float | None = None
    family_size: int = 0
    sensitivity: dict[str, str] = field(default_factory=dict)
    fragile: bool = False


def other_readings(claim: Claim, loss_tolerance: float) -> dict[str, Claim] | None:
    """The claim on recalibrated top-1 and on test loss (lower is better, so the relation turns
    round); None for a claim that is not about test top-1 between variants."""
    split, _, name = claim.metric.partition(".")
    if name != "acc1" or split != "test" or claim.expectation().constant is not None:
        return None  # a loss against an accuracy threshold would mean nothing
    turned = claim.expect.translate(str.maketrans("<>", "><"))
    loss = {"metric": "test.loss", "expect": turned}
    if claim.expectation().relation == "~":
        loss["tolerance"] = loss_tolerance
    return {READINGS[0]: claim.model_copy(update={"metric": "recal.acc1"}),
            READINGS[1]: claim.model_copy(update=loss)}


def adjust(rows: list[Row], rejudge: Callable[[Claim, list[str]], Judgement | None], loss_tolerance: float) -> None:
    """Holm within each family of tested claims; then each decided claim's other readings."""
    for mechanism in (False, True):
        family = [row for row in rows if row.claim.mechanism() == mechanism and row.judgement is not None
                  and row.judgement.p_value is not None]
        adjusted = holm([row.judgement.p_value for row in family])  # type: ignore[union-attr]
        order = sorted(range(len(family)), key=lambda i: family[i].judgement.p_value)  # type: ignore[union-attr]
        # Holm's step for each claim: its multiplier, and the adjusted p of the claims ranked before it
        steps = {index: (len(family) - rank, max([adjusted[i] for i in order[:rank]], default=0.0))
                 for rank, index in enumerate(order)}
        for index, (row, p_holm) in enumerate(zip(family, adjusted, strict=True)):
            assert row.judgement is not None
            row.p_holm, row.family_size = p_holm, len(family)
            row.verdict = verdict_for(row.judgement.direction, p_holm)
            if row.verdict in DECIDED:
                _sensitivity(row, rejudge, loss_tolerance, *steps[index])
    for row in rows:
        if row.judgement is not None and row.judgement.p_value is None:
            row.verdict = row.judgement.verdict  # one seed, or no common BN layer: no test to adjust


def _sensitivity(row: Row, rejudge: Callable[[Claim, list[str]], Judgement | None], loss_tolerance: float,
                 multiplier: int, step_floor: float) -> None:
    """Each other reading, adjusted as Holm adjusted the claim: its p times the claim's multiplier,
    and no lower than the adjusted p of the claims ranked before it."""
    readings = other_readings(row.claim, loss_tolerance)
    if readings is None:
        return
    for reading, claim in readings.items():
        other = rejudge(claim, row.names)
        if other is None or other.p_value is None:
            row.sensitivity[reading] = "not measured"
            continue
        verdict = verdict_for(other.direction, max(step_floor, min(1.0, other.p_value * multiplier)))
        row.sensitivity[reading] = f"{verdict} ({other.difference})"
        row.fragile = row.fragile or verdict != row.verdict


def verdict_text(row: Row) -> str:
    return f"{row.verdict} ({FRAGILE})" if row.fragile else row.verdict

