"""The `aggregate` stage: every run's metrics -> per-variant statistics over seeds, pairwise
comparisons within each study, and the claims' verdicts.

Writes metrics/summary.json, the one DVC metrics file, with short keys so that `dvc exp show`
and `dvc metrics diff` stay readable; report/stats.json with every interval and comparison;
and plots/test/<study>.tsv for `dvc plots diff`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from difflib import get_close_matches
from itertools import combinations
from pathlib import Path

from droplab.atomic import write_json, write_text
from droplab.claims import Claim, ClaimsError, evaluate, load_claims
from droplab.config import Params
from droplab.stats import compare, summarize

CONFIDENCE = 0.95
SPLITS = ("val", "test")
METRICS = ("acc1", "acc5", "f1_macro", "loss")
COMPARED = "test.acc1"  # the metric the studies compare variants on
SUMMARY_KEYS = {"test_acc1": "test.acc1", "test_acc5": "test.acc5", "test_f1": "test.f1_macro",
                "test_loss": "test.loss", "val_acc1": "val.acc1", "val_loss": "val.loss"}
SPREAD_KEYS = ("test_acc1", "val_acc1", "val_loss")  # their seed SD too, where there are seeds


def run_values(params: Params, metrics_dir: Path) -> dict[str, dict[str, list[float]]]:
    """variant -> "split.metric" -> one value per seed, in seed order."""
    values: dict[str, dict[str, list[float]]] = {name: {} for name in params.variants}
    for run in params.runs().values():
        result = json.loads(run.path(metrics_dir / "train", ".json").read_text())
        for split in SPLITS:
            for metric in METRICS:
                values[run.variant].setdefault(f"{split}.{metric}", []).append(result[split][metric])
    return values


def _rounded(record: dict) -> dict:
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in record.items()}


def summary(values: dict[str, dict[str, list[float]]]) -> dict:
    """metrics/summary.json: means over seeds, and seed SDs where there are seeds."""
    result = {}
    for variant, metrics in values.items():
        row: dict = {"seeds": len(metrics[COMPARED])}
        for key, metric in SUMMARY_KEYS.items():
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


def statistics(params: Params, values: dict[str, dict[str, list[float]]], claims_path: Path) -> dict:
    """report/stats.json: every interval, every within-study comparison, every claim's verdict."""
    per_variant = {variant: {metric: _rounded(asdict(summarize(series, CONFIDENCE)))
                             for metric, series in metrics.items()}
                   for variant, metrics in values.items()}
    comparisons = {
        study: [_rounded({"a": a, "b": b, "metric": COMPARED,
                          **asdict(compare(values[a][COMPARED], values[b][COMPARED], CONFIDENCE))})
                for a, b in combinations(group.variants, 2)]
        for study, group in params.studies.items()
    }
    loaded = load_claims(claims_path)
    check_claim_variants(loaded, params, claims_path)
    claims = [asdict(evaluate(claim, {variant: metrics.get(claim.metric, []) for variant, metrics in values.items()},
                              CONFIDENCE))
              for claim in loaded]
    return {"confidence": CONFIDENCE, "variants": per_variant, "comparisons": comparisons, "claims": claims}


def study_tsv(variants: list[str], per_variant: dict) -> str:
    """One row per variant: test acc1 mean and its interval (the mean itself with one seed)."""
    lines = ["variant\ttest_acc1\ttest_acc1_low\ttest_acc1_high\tseeds"]
    for name in variants:
        stat = per_variant[name][COMPARED]
        low = stat["ci_low"] if stat["ci_low"] is not None else stat["mean"]
        high = stat["ci_high"] if stat["ci_high"] is not None else stat["mean"]
        lines.append(f"{name}\t{stat['mean']:.6f}\t{low:.6f}\t{high:.6f}\t{stat['n']}")
    return "\n".join(lines) + "\n"


def main(params: Params, metrics_dir: Path, plots_dir: Path, report_dir: Path, claims_path: Path) -> dict:
    values = run_values(params, metrics_dir)
    stats = statistics(params, values, claims_path)
    for study, group in params.studies.items():
        write_text(plots_dir / "test" / f"{study}.tsv", study_tsv(group.variants, stats["variants"]))
    write_json(report_dir / "stats.json", stats)
    write_json(metrics_dir / "summary.json", summary(values))
    return stats
