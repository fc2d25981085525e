"""Each claim of claims.yaml against this run: are its variants known, is it in its regime, and
its judged row, as report/stats.json records it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from droplab.config import Params
from droplab.metric_table import COMPARED, rounded, rounded_floats
from droplab.results import regimes
from droplab.results.claims import Claim, Claims
from droplab.results.collect import Collected
from droplab.results.judge import Judgement, judge
from droplab.results.labels import study_labels
from droplab.results.verdict_words import NOT_RUN, not_testable
from droplab.results.verdicts import Row, adjust, verdict_text


def claim_values(claim: Claim, names: list[str], collected: Collected) -> dict:
    """Each named label's per-seed values of the claim's metric (per BN layer for a layerwise one)."""
    if claim.layerwise():
        field = claim.metric.removeprefix("bn.")
        return {label: collected.layers.get(label, {}).get(field, {}) for label in names}
    return {label: collected.values.get(label, {}).get(claim.metric, []) for label in names}


def _rejudge(collected: Collected):
    def rejudge(claim: Claim, names: list[str]) -> Judgement | None:
        renamed = claim.model_copy(update={"expect": _renamed(claim, names)})
        values = claim_values(claim, names, collected)
        return judge(renamed, values) if all(values.values()) else None
    return rejudge


def _renamed(claim: Claim, names: list[str]) -> str:
    """The claim's expect with its variants replaced by their labels (a swept one's selected rate)."""
    expectation = claim.expectation()
    terms = [*names, *([f"{expectation.constant:g}"] if expectation.constant is not None else [])]
    return f" {expectation.relation} ".join(terms)


def _compared(collected: Collected, alias: Mapping[str, str]) -> dict[str, list[float]]:
    """Test top-1 per seed by label, and by variant name for a swept variant (its selected rate's)."""
    acc1 = {label: values[COMPARED] for label, values in collected.values.items()}
    return {**acc1, **{variant: acc1[label] for variant, label in alias.items() if label in acc1}}


def regime_measurements(params: Params, claims: Claims, collected: Collected, alias: Mapping[str, str]) -> dict:
    """Per study: its trained floor and the runs below it; the overfitting of every variant a claim names."""
    acc1 = _compared(collected, alias)
    result: dict = {}
    for study in params.studies:
        floor = regimes.study_floor(claims.regimes.trained, study, acc1)
        below = {}
        if floor is not None and floor.value is not None:
            below = {label: regimes.below_floor(floor, dict(zip(collected.seeds[label], acc1[label], strict=True)))
                     for label in study_labels(params, study, alias, collected.values)}
        result[study] = {"floor": None if floor is None else rounded_floats(asdict(floor)),
                         "below_floor": {label: seeds for label, seeds in below.items() if seeds}, "overfitting": {}}
    for claim in claims.claims:
        if claim.overfits and claim.study in result and (label := alias.get(claim.overfits, claim.overfits)) in \
                collected.curves:
            measure = regimes.overfitting(collected.curves[label], claims.regimes.overfitting)
            result[claim.study]["overfitting"][label] = {**rounded_floats(asdict(measure)),
                                                         "overfits": measure.overfits,
                                                         "text": measure.describe(claims.regimes.overfitting)}
    return result


def _row(claim: Claim, params: Params, claims: Claims, collected: Collected, alias: Mapping[str, str],
         measured: dict) -> Row:
    names = [alias.get(name, name) for name in claim.variants()]
    missing = [name for name in names if name not in collected.values]
    if missing:
        reasons = sorted({reason for name in claim.variants() if name in params.variants
                          and (reason := params.skipped_at_scale(name))})
        if reasons:
            why = f"not trained at scale {params.scale}: {'; '.join(reasons)}"
            return Row(claim, names, None, why, not_testable(why))
        return Row(claim, names, None, f"no {claim.metric} values for {', '.join(missing)}", NOT_RUN)
    acc1 = _compared(collected, alias)
    floor = regimes.study_floor(claims.regimes.trained, claim.study, acc1)
    problems = [regimes.trained_problem(floor, claim.study, {name: dict(zip(collected.seeds[name], acc1[name],
                                                                            strict=True)) for name in names})]
    if claim.overfits:
        label = alias.get(claim.overfits, claim.overfits)
        overfit = measured.get(claim.study, {}).get("overfitting", {}).get(label)
        problems.append(None if overfit and overfit["overfits"] else
                        regimes.overfitting_problem(label, None if overfit is None else _measure(overfit),
                                                    claims.regimes.overfitting))
    problems = [problem for problem in problems if problem]
    if problems:
        return Row(claim, names, None, "; ".join(problems), not_testable("; ".join(problems)))
    renamed = claim.model_copy(update={"expect": _renamed(claim, names)})
    return Row(claim, names, judge(renamed, claim_values(claim, names, collected)), "reached")


def _measure(record: dict) -> regimes.OverfitMeasure:
    fields = regimes.OverfitMeasure.__dataclass_fields__
    return regimes.OverfitMeasure(**{key: value for key, value in record.items() if key in fields})


def _claim_record(row: Row) -> dict:
    judgement = row.judgement
    return {"id": row.claim.id, "study": row.claim.study, "says": row.claim.says, "metric": row.claim.metric,
            "expect": row.claim.expect, "compared": row.names, "paired": row.claim.paired,
            "mechanism": row.claim.mechanism(), "regime": row.regime, "verdict": verdict_text(row),
            "observed": judgement.numbers if judgement else None,
            "difference": judgement.difference if judgement else None,
            "p_value": None if judgement is None or judgement.p_value is None else rounded(judgement.p_value),
            "p_holm": None if row.p_holm is None else rounded(row.p_holm), "family_size": row.family_size,
            "superiority": judgement.superiority if judgement else None,
            "power": judgement.power if judgement else None, "sensitivity": row.sensitivity, "fragile": row.fragile,
            "steps": [rounded_floats(asdict(step)) for step in judgement.steps] if judgement else []}


def judge_claims(params: Params, claims: Claims, collected: Collected, alias: Mapping[str, str],
                 measured: dict) -> list[dict]:
    """Every claim's record: judged in its regime, Holm-adjusted in its family, its other readings."""
    rows = [_row(claim, params, claims, collected, alias, measured) for claim in claims.claims]
    adjust(rows, _rejudge(collected), claims.sensitivity.loss_tolerance)
    return [_claim_record(row) for row in rows]
