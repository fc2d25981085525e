"""The `aggregate` stage: every run's metrics -> per-variant statistics over seeds, the sweep's
selected rate, each study's regime measurements, comparisons within each study, the claims'
verdicts and the BN analysis checks.

Writes metrics/summary.json, the one DVC metrics file, with the headline only so that `dvc exp
show` and `dvc metrics diff` stay readable; report/stats.json with every interval and
comparison; and the git-tracked plot data of plots/ (results.plot_data) for `dvc plots`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from difflib import get_close_matches
from itertools import combinations
from pathlib import Path

from droplab.atomic import write_json, write_text
from droplab.config import Params, Run, rate_tag
from droplab.results import regimes
from droplab.results.claims import LAYERWISE, Claim, Claims, ClaimsError, load_claims
from droplab.results.judge import NOT_RUN, Judgement, judge
from droplab.results.plot_data import CURVES, accuracy_tsv, claims_tsv, curves_tsv, verdict_word
from droplab.results.stats import DIFFERS, NOISE, compare, compare_paired, holm, summarize
from droplab.results.verdicts import Row, adjust, not_testable, verdict_text

CONFIDENCE = 0.95
SPLITS = ("train", "val", "test")
METRICS = ("acc1", "acc5", "f1_macro", "loss")
COMPARED = "test.acc1"  # the metric the studies compare variants on
VERDICT_WORDS = ("confirmed", "contradicted", "inconclusive", "not testable", "not run")

Values = dict[str, dict[str, list[float]]]  # label -> "split.metric" or "bn.<name>" -> one value per seed
Layers = dict[str, dict[str, dict[str, list[float]]]]  # label -> bn metric -> BN layer -> one value per seed


@dataclass
class Collected:
    """Every run's numbers, by label (a variant, or a swept variant at one rate), in seed order."""

    values: Values = field(default_factory=dict)
    layers: Layers = field(default_factory=dict)
    seeds: dict[str, list[int]] = field(default_factory=dict)
    curves: dict[str, list[list[dict]]] = field(default_factory=dict)  # label -> each seed's history
    theory_gaps: list[dict] = field(default_factory=list)  # every directly dropout-fed BN layer of every run


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _bn_scalars(bn: dict, test_acc1: float) -> dict[str, float | None]:
    recal = bn["recalibration"] or {}
    return {"bn.dropout_variance_ratio_blocks": bn["dropout_variance_ratio_blocks"],
            "bn.stored_variance_shift_blocks": bn["stored_variance_shift_blocks"],
            "bn.recal_gain": recal.get("test_acc1_gain"),
            # top-1 after BN recalibration: without BN there is nothing to recalibrate
            "recal.acc1": recal.get("test_acc1_after", test_acc1)}


def _add_run(collected: Collected, run: Run, result: dict, bn: dict) -> None:
    label = run.label
    values = collected.values.setdefault(label, {})
    for split in SPLITS:
        for metric in METRICS:
            values.setdefault(f"{split}.{metric}", []).append(result[split][metric])
    for key, value in _bn_scalars(bn, result["test"]["acc1"]).items():
        if value is not None:
            values.setdefault(key, []).append(value)
    block = {name: layer for name, layer in bn["layers"].items() if layer["role"] == "block"}
    per_layer = collected.layers.setdefault(label, {}).setdefault("dropout_variance_ratio", {})
    for name, layer in block.items():
        per_layer.setdefault(name, []).append(layer["dropout_variance_ratio"])
    collected.theory_gaps += [{"run": f"{label} seed {run.seed}", "layer": name, "theory_gap": layer["theory_gap"]}
                              for name, layer in bn["layers"].items() if layer["fed_by_dropout"] == "direct"]
    collected.seeds.setdefault(label, []).append(run.seed)
    collected.curves.setdefault(label, []).append(result["history"])


def collect(params: Params, metrics_dir: Path) -> Collected:
    """Per-seed values of every trained label, per-layer BN measures, curves and theory gaps."""
    collected = Collected()
    for run in params.runs().values():
        _add_run(collected, run, _read(run.path(metrics_dir / "train", ".json")),
                 _read(run.path(metrics_dir / "bn", ".json")))
    _add_twin_gains(params, collected.values)
    return collected


def _add_twin_gains(params: Params, values: Values) -> None:
    """bn.recal_gain_vs_twin: a variant's recalibration gain minus its no-dropout twin's, seed by seed."""
    for study in params.studies.values():
        for variant, twin in study.twins.items():
            mine, theirs = values.get(variant, {}).get("bn.recal_gain"), values.get(twin, {}).get("bn.recal_gain")
            if mine and theirs:
                count = min(len(mine), len(theirs))
                values[variant]["bn.recal_gain_vs_twin"] = [a - b for a, b in zip(mine[:count], theirs[:count],
                                                                                  strict=True)]


def _rounded(record: dict) -> dict:
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in record.items()}


def select_sweeps(params: Params, values: Values) -> dict[str, dict]:
    """Per sweeping study: every rate's seed mean of the selection metric for each swept variant,
    the selected rate (best mean of the `select` variant; the first on a tie), and each swept
    variant's label at it. Validation only: the test split plays no part in the choice."""
    sweeps = {}
    for name, study in params.studies.items():
        sweep = study.sweep
        if sweep is None:
            continue
        swept = [variant for variant in study.variants if params.sweep_rates(variant)]
        table = {rate_tag(rate): {variant: _rounded(asdict(summarize(values[label][sweep.metric], CONFIDENCE)))
                                  for variant in swept if (label := f"{variant}_{rate_tag(rate)}") in values}
                 for rate in sweep.rates}
        scored = [(table[rate_tag(rate)][sweep.select]["mean"], index, rate) for index, rate in enumerate(sweep.rates)
                  if sweep.select in table[rate_tag(rate)]]
        if not scored:
            continue
        best = (min(scored) if sweep.metric.endswith("loss") else max(scored, key=lambda s: (s[0], -s[1])))[2]
        sweeps[name] = {"metric": sweep.metric, "select": sweep.select, "selected": best, "rates": table,
                        "labels": {variant: f"{variant}_{rate_tag(best)}" for variant in swept}}
    return sweeps


def aliases(sweeps: Mapping[str, dict]) -> dict[str, str]:
    """A swept variant's name -> its selected rate's label: what claims and tables read it as."""
    return {variant: label for sweep in sweeps.values() for variant, label in sweep["labels"].items()}


def study_labels(params: Params, study: str, alias: Mapping[str, str], values: Values) -> list[str]:
    """The study's trained variants as labels, a swept one at its selected rate."""
    return [label for variant in params.studies[study].variants if (label := alias.get(variant, variant)) in values]


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


def _claim_values(metric: str, names: list[str], collected: Collected) -> dict:
    name = metric.removeprefix("bn.")
    if metric.startswith("bn.") and name in LAYERWISE:
        return {label: collected.layers.get(label, {}).get(name, {}) for label in names}
    return {label: collected.values.get(label, {}).get(metric, []) for label in names}


def _rejudge(collected: Collected):
    def rejudge(claim: Claim, names: list[str]) -> Judgement | None:
        renamed = claim.model_copy(update={"expect": _renamed(claim, names)})
        values = _claim_values(claim.metric, names, collected)
        return judge(renamed, values) if all(values.values()) else None
    return rejudge


def _renamed(claim: Claim, names: list[str]) -> str:
    """The claim's expect with its variants replaced by their labels (a swept one's selected rate)."""
    expectation = claim.expectation()
    terms = [*names, *([f"{expectation.constant:g}"] if expectation.constant is not None else [])]
    return f" {expectation.relation} ".join(terms)


def _test_acc1(collected: Collected, alias: Mapping[str, str]) -> dict[str, list[float]]:
    """Test top-1 per seed by label, and by variant name for a swept variant (its selected rate's)."""
    acc1 = {label: values["test.acc1"] for label, values in collected.values.items()}
    return {**acc1, **{variant: acc1[label] for variant, label in alias.items() if label in acc1}}


def regime_measurements(params: Params, claims: Claims, collected: Collected, alias: Mapping[str, str]) -> dict:
    """Per study: its trained floor and the runs below it; the overfitting of every variant a claim names."""
    acc1 = _test_acc1(collected, alias)
    result: dict = {}
    for study in params.studies:
        floor = regimes.study_floor(claims.regimes.trained, study, acc1)
        below = {}
        if floor is not None and floor.value is not None:
            below = {label: [collected.seeds[label][i] for i, value in enumerate(acc1[label]) if value <= floor.value]
                     for label in study_labels(params, study, alias, collected.values)}
        result[study] = {"floor": None if floor is None else _rounded(asdict(floor)),
                         "below_floor": {label: seeds for label, seeds in below.items() if seeds}, "overfitting": {}}
    for claim in claims.claims:
        if claim.overfits and claim.study in result and (label := alias.get(claim.overfits, claim.overfits)) in \
                collected.curves:
            measure = regimes.overfitting(collected.curves[label], claims.regimes.overfitting)
            result[claim.study]["overfitting"][label] = {**_rounded(asdict(measure)), "overfits": measure.overfits,
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
    acc1 = _test_acc1(collected, alias)
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
    return Row(claim, names, judge(renamed, _claim_values(claim.metric, names, collected)), "reached")


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
            "p_value": None if judgement is None or judgement.p_value is None else round(judgement.p_value, 6),
            "p_holm": None if row.p_holm is None else round(row.p_holm, 6), "family_size": row.family_size,
            "superiority": judgement.superiority if judgement else None,
            "power": judgement.power if judgement else None, "sensitivity": row.sensitivity, "fragile": row.fragile,
            "steps": [_rounded(asdict(step)) for step in judgement.steps] if judgement else []}


def judge_claims(params: Params, claims: Claims, collected: Collected, alias: Mapping[str, str],
                 measured: dict) -> list[dict]:
    rows = [_row(claim, params, claims, collected, alias, measured) for claim in claims.claims]
    adjust(rows, _rejudge(collected), claims.sensitivity.loss_tolerance)
    return [_claim_record(row) for row in rows]


def theory_check(collected: Collected, tolerance: float) -> dict:
    """Where dropout feeds BN directly, the measured D must match its closed form: a check of the
    BN analysis itself, failing only if the measurement (or the dropout) is wrong."""
    gaps = collected.theory_gaps
    failures = [gap for gap in gaps if gap["theory_gap"] is None or abs(gap["theory_gap"]) > tolerance]
    worst = max((abs(gap["theory_gap"]) for gap in gaps if gap["theory_gap"] is not None), default=None)
    return {"tolerance": tolerance, "layers_checked": len(collected.theory_gaps), "largest_gap": worst,
            "failures": failures, "passed": not failures}


def paired_pairs(claims: Claims, alias: Mapping[str, str]) -> set[frozenset[str]]:
    """The pairs of labels some claim declared paired: the exploratory tables compare them seed by seed too."""
    pairs = set()
    for claim in claims.claims:
        names = [alias.get(name, name) for name in claim.variants()]
        if claim.paired:
            pairs |= {frozenset(pair) for pair in combinations(names, 2)}
    return pairs


def exploratory_comparisons(params: Params, values: Values, alias: Mapping[str, str],
                            paired: set[frozenset[str]]) -> dict[str, list[dict]]:
    """Every pair of trained variants within a study on test top-1, paired by seed where a claim
    declared the pair paired (Welch otherwise), with Holm-adjusted p-values per study:
    exploratory, since no claim named most of these pairs before the run."""
    tables = {}
    for study in params.studies:
        rows = []
        for a, b in combinations(study_labels(params, study, alias, values), 2):
            is_paired = frozenset((a, b)) in paired and len(values[a][COMPARED]) == len(values[b][COMPARED])
            test = compare_paired if is_paired else compare
            rows.append({"a": a, "b": b, "metric": COMPARED, "test": "paired" if is_paired else "Welch",
                         **asdict(test(values[a][COMPARED], values[b][COMPARED], CONFIDENCE))})
        for row, adjusted in zip(rows, holm([row["p_value"] for row in rows]), strict=True):
            row["p_holm"] = adjusted
            if adjusted is not None:  # the verdict follows the adjusted p (deterministic pairs have none)
                row["verdict"] = DIFFERS if adjusted < 1 - CONFIDENCE else NOISE
        tables[study] = [_rounded(row) for row in rows]
    return tables


def headline(params: Params, per_variant: Mapping[str, dict], alias: Mapping[str, str], claims: list[dict]) -> dict:
    """metrics/summary.json, the one DVC metrics file, kept to what `dvc exp show` and `dvc metrics
    diff` can show at a glance: each trained variant's mean test top-1 over seeds under the
    variant's name alone (a swept one at its selected rate), so that the changed columns of an
    experiment fit a 200-column terminal, and how many claims got each verdict. Every interval
    and comparison is in report/stats.json."""
    accuracy = {variant: per_variant[label][COMPARED]["mean"]  # the statistics' mean, not computed again
                for variant in params.trained_variants() if (label := alias.get(variant, variant)) in per_variant}
    counted = Counter(verdict_word(claim["verdict"]) for claim in claims)
    return {**accuracy, "claims": {word.replace(" ", "_"): counted[word] for word in VERDICT_WORDS}}


def statistics(params: Params, collected: Collected, claims: Claims) -> dict:
    """report/stats.json: every interval, the sweep, the regimes, every comparison and claim, the checks."""
    values = collected.values
    per_variant = {label: {metric: _rounded(asdict(summarize(series, CONFIDENCE)))
                           for metric, series in metrics.items()}
                   for label, metrics in values.items()}
    per_layer = {label: {metric: {layer: _rounded(asdict(summarize(series, CONFIDENCE)))
                                  for layer, series in by_layer.items()}
                         for metric, by_layer in metrics.items()}
                 for label, metrics in collected.layers.items()}
    sweeps = select_sweeps(params, values)
    alias = aliases(sweeps)
    measured = regime_measurements(params, claims, collected, alias)
    return {"confidence": CONFIDENCE, "scale": params.scale, "variants": per_variant, "layers": per_layer,
            "sweeps": sweeps,
            "studies": {study: study_labels(params, study, alias, values) for study in params.studies},
            "regimes": measured,
            "comparisons": exploratory_comparisons(params, values, alias, paired_pairs(claims, alias)),
            "claims": judge_claims(params, claims, collected, alias, measured),
            "checks": {"theory_gap": theory_check(collected, claims.checks.theory_gap)}}


def main(params: Params, metrics_dir: Path, plots_dir: Path, report_dir: Path, claims_path: Path) -> dict:
    claims = load_claims(claims_path)
    check_claim_variants(claims, params, claims_path)
    collected = collect(params, metrics_dir)
    stats = statistics(params, collected, claims)
    for study, labels in stats["studies"].items():
        write_text(plots_dir / "test" / f"{study}.tsv", accuracy_tsv(labels, stats["variants"], COMPARED))
        for metric in CURVES:
            write_text(plots_dir / "curves" / f"{study}_{metric}.tsv",
                       curves_tsv(labels, collected.curves, metric, CONFIDENCE))
    write_text(plots_dir / "claims.tsv", claims_tsv(stats["claims"]))
    write_json(report_dir / "stats.json", stats)
    write_json(metrics_dir / "summary.json", headline(params, stats["variants"], aliases(stats["sweeps"]),
                                                      stats["claims"]))
    return stats
