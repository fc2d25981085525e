"""The `aggregate` stage: every run's metrics -> per-variant statistics over seeds, pairwise
comparisons within each study, and the claims' verdicts.

Writes metrics/summary.json, the one DVC metrics file, with short keys so that `dvc exp show`
and `dvc metrics diff` stay readable; report/stats.json with every interval and comparison;
and plots/test/<study>.tsv for `dvc plots diff`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from difflib import get_close_matches
from itertools import combinations
from pathlib import Path

from droplab.atomic import write_json, write_text
from droplab.config import Params
from droplab.results.claims import LAYERWISE, NOT_RUN, Claim, ClaimsError, evaluate, load_claims
from droplab.results.stats import DIFFERS, NOISE, compare, holm, summarize

CONFIDENCE = 0.95
SPLITS = ("val", "test")
METRICS = ("acc1", "acc5", "f1_macro", "loss")
COMPARED = "test.acc1"  # the metric the studies compare variants on
SUMMARY_KEYS = {"test_acc1": "test.acc1", "test_acc5": "test.acc5", "test_f1": "test.f1_macro",
                "test_loss": "test.loss", "val_acc1": "val.acc1", "val_loss": "val.loss",
                "dropout_D": "bn.dropout_variance_ratio_blocks", "stored_shift": "bn.stored_variance_shift_blocks",
                "recal_gain": "bn.recal_gain"}
SPREAD_KEYS = ("test_acc1", "val_acc1", "val_loss")  # their seed SD too, where there are seeds
# A run is untrained when it ends near chance: top-1 under 1.5x chance, or a test loss no better
# than predicting every class equally likely (ln of the number of classes).
CHANCE_FACTOR = 1.5

Values = dict[str, dict[str, list[float]]]  # variant -> "split.metric" or "bn.<name>" -> one value per seed
Layers = dict[str, dict[str, dict[str, list[float]]]]  # variant -> bn metric -> BN layer -> one value per seed


def _bn_scalars(bn: dict) -> dict[str, float | None]:
    recal = bn["recalibration"] or {}
    return {"bn.dropout_variance_ratio_blocks": bn["dropout_variance_ratio_blocks"],
            "bn.stored_variance_shift_blocks": bn["stored_variance_shift_blocks"],
            "bn.recal_gain": recal.get("test_acc1_gain")}


def _bn_layers(bn: dict) -> dict[str, dict[str, float]]:
    """The layer-by-layer measures: D at the blocks' BNs, and D against theory where dropout feeds BN directly."""
    block = {name: layer for name, layer in bn["layers"].items() if layer["role"] == "block"}
    return {"dropout_variance_ratio": {name: layer["dropout_variance_ratio"] for name, layer in block.items()},
            "theory_gap": {name: layer["theory_gap"] for name, layer in block.items()
                           if layer["fed_by_dropout"] == "direct"}}


def run_values(params: Params, metrics_dir: Path, classes: int) -> tuple[Values, Layers, dict[str, list[int]]]:
    """Per-seed values of every trained variant, the per-layer BN measures, and the seeds whose
    runs ended near chance (variant -> seeds)."""
    values: Values = {name: {} for name in params.trained_variants()}
    layers: Layers = {name: {} for name in params.trained_variants()}
    untrained: dict[str, list[int]] = {}
    for run in params.runs().values():
        result = json.loads(run.path(metrics_dir / "train", ".json").read_text())
        bn = json.loads(run.path(metrics_dir / "bn", ".json").read_text())
        for split in SPLITS:
            for metric in METRICS:
                values[run.variant].setdefault(f"{split}.{metric}", []).append(result[split][metric])
        for key, value in _bn_scalars(bn).items():
            if value is not None:
                values[run.variant].setdefault(key, []).append(value)
        for metric, per_layer in _bn_layers(bn).items():
            for layer, value in per_layer.items():
                layers[run.variant].setdefault(metric, {}).setdefault(layer, []).append(value)
        if result["test"]["acc1"] < CHANCE_FACTOR / classes or result["test"]["loss"] >= math.log(classes):
            untrained.setdefault(run.variant, []).append(run.seed)
    _add_twin_gains(params, values)
    return values, layers, untrained


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


def summary(values: Values, untrained: dict[str, list[int]]) -> dict:
    """metrics/summary.json: means over seeds, and seed SDs where there are seeds."""
    result = {}
    for variant, metrics in values.items():
        row: dict = {"seeds": len(metrics[COMPARED]), "untrained": len(untrained.get(variant, []))}
        for key, metric in SUMMARY_KEYS.items():
            if metric not in metrics:
                continue
            stat = summarize(metrics[metric], CONFIDENCE)
            row[key] = stat.mean
            if key in SPREAD_KEYS and stat.sd is not None:
                row[f"{key}_sd"] = stat.sd
        result[variant] = _rounded(row)
    return result


def check_claim_variants(claims: list[Claim], params: Params, claims_path: Path) -> None:
    """A claim may name a variant this config skips (it is then "not run"), never an unknown one."""
    known = set(params.variants) | set(params.skipped_variants)
    for claim in claims:
        unknown = [name for name in claim.variants() if name not in known]
        if unknown:
            close = get_close_matches(unknown[0], sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ClaimsError(f"{claims_path}: claim {claim.id!r} names {unknown[0]!r}, which is neither in "
                              f"params.yaml variants nor in skipped_variants{hint}")


def exploratory_comparisons(params: Params, values: Values) -> dict[str, list[dict]]:
    """Every pair of trained variants within a study on test acc1 (Welch), with Holm-adjusted
    p-values per study: exploratory, since no claim named these pairs before the run."""
    tables = {}
    for study, group in params.studies.items():
        trained = [name for name in group.variants if name in values]
        rows = [{"a": a, "b": b, "metric": COMPARED, **asdict(compare(values[a][COMPARED], values[b][COMPARED],
                                                                      CONFIDENCE))}
                for a, b in combinations(trained, 2)]
        for row, adjusted in zip(rows, holm([row["p_value"] for row in rows]), strict=True):
            row["p_holm"] = adjusted
            if adjusted is not None:  # the verdict follows the adjusted p (deterministic pairs have none)
                row["verdict"] = DIFFERS if adjusted < 1 - CONFIDENCE else NOISE
        tables[study] = [_rounded(row) for row in rows]
    return tables


def _claim_values(claim: Claim, values: Values, layers: Layers) -> dict:
    name = claim.metric.removeprefix("bn.")
    if claim.metric.startswith("bn.") and name in LAYERWISE:
        return {variant: per_metric.get(name, {}) for variant, per_metric in layers.items()}
    return {variant: metrics.get(claim.metric, []) for variant, metrics in values.items()}


def statistics(params: Params, values: Values, layers: Layers, untrained: dict[str, list[int]],
               claims_path: Path) -> dict:
    """report/stats.json: every interval, every within-study comparison, every claim's verdict."""
    per_variant = {variant: {metric: _rounded(asdict(summarize(series, CONFIDENCE)))
                             for metric, series in metrics.items()}
                   for variant, metrics in values.items()}
    per_layer = {variant: {metric: {layer: _rounded(asdict(summarize(series, CONFIDENCE)))
                                    for layer, series in by_layer.items()}
                           for metric, by_layer in metrics.items()}
                 for variant, metrics in layers.items()}
    loaded = load_claims(claims_path)
    check_claim_variants(loaded, params, claims_path)
    claims = []
    for claim in loaded:
        result = asdict(evaluate(claim, _claim_values(claim, values, layers), CONFIDENCE, untrained=untrained))
        reasons = sorted({reason for name in claim.variants()
                          if name in params.variants and (reason := params.skipped_at_scale(name))})
        if reasons and result["verdict"] == NOT_RUN:
            result["detail"] = f"not trained at scale {params.scale}: {'; '.join(reasons)}"
        claims.append(result)
    return {"confidence": CONFIDENCE, "scale": params.scale, "variants": per_variant, "layers": per_layer,
            "untrained": untrained, "comparisons": exploratory_comparisons(params, values), "claims": claims}


def study_tsv(variants: list[str], per_variant: dict) -> str:
    """One row per trained variant: test acc1 mean and its interval (the mean itself with one seed)."""
    lines = ["variant\ttest_acc1\ttest_acc1_low\ttest_acc1_high\tseeds"]
    for name in variants:
        if name not in per_variant:
            continue
        stat = per_variant[name][COMPARED]
        low = stat["ci_low"] if stat["ci_low"] is not None else stat["mean"]
        high = stat["ci_high"] if stat["ci_high"] is not None else stat["mean"]
        lines.append(f"{name}\t{stat['mean']:.6f}\t{low:.6f}\t{high:.6f}\t{stat['n']}")
    return "\n".join(lines) + "\n"


def main(params: Params, metrics_dir: Path, plots_dir: Path, report_dir: Path, claims_path: Path,
         classes: int) -> dict:
    values, layers, untrained = run_values(params, metrics_dir, classes)
    stats = statistics(params, values, layers, untrained, claims_path)
    for study, group in params.studies.items():
        write_text(plots_dir / "test" / f"{study}.tsv", study_tsv(group.variants, stats["variants"]))
    write_json(report_dir / "stats.json", stats)
    write_json(metrics_dir / "summary.json", summary(values, untrained))
    return stats
