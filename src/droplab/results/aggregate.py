"""The `aggregate` stage: every run's metrics -> per-variant statistics over seeds, the sweep's
selected rate, each study's regime measurements, comparisons within each study, the claims'
verdicts and the BN analysis checks.

Writes metrics/summary.json, the one DVC metrics file, with the headline only so that `dvc exp
show` and `dvc metrics diff` stay readable; report/stats.json with every interval and
comparison; and the git-tracked plot data of plots/ (results.plot_data) for `dvc plots`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict
from itertools import combinations
from pathlib import Path

from droplab.atomic import write_json, write_text
from droplab.config import Params
from droplab.metric_table import COMPARED, rounded_floats
from droplab.results.claim_rows import judge_claims, regime_measurements
from droplab.results.claims import Claims, check_claim_variants, load_claims
from droplab.results.collect import Collected, SeriesByMetric, collect
from droplab.results.labels import aliases, select_sweeps, study_labels
from droplab.results.plot_data import CURVES, accuracy_tsv, claims_tsv, curves_tsv
from droplab.results.stats import CONFIDENCE, DIFFERS, NOISE, choose_test, compare_with, holm, summarize
from droplab.results.verdict_words import VERDICT_WORDS, verdict_word


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


def exploratory_comparisons(params: Params, values: SeriesByMetric, alias: Mapping[str, str],
                            paired: set[frozenset[str]]) -> dict[str, list[dict]]:
    """Every pair of trained variants within a study on test top-1, paired by seed where a claim
    declared the pair paired (Welch otherwise), with Holm-adjusted p-values per study:
    exploratory, since no claim named most of these pairs before the run."""
    tables = {}
    for study in params.studies:
        rows = []
        for a, b in combinations(study_labels(params, study, alias, values), 2):
            first, second = values[a][COMPARED], values[b][COMPARED]
            is_paired = frozenset((a, b)) in paired and len(first) == len(second)
            rows.append({"a": a, "b": b, "metric": COMPARED, "test": choose_test(second, is_paired),
                         **asdict(compare_with(first, second, is_paired, CONFIDENCE))})
        for row, adjusted in zip(rows, holm([row["p_value"] for row in rows]), strict=True):
            row["p_holm"] = adjusted
            if adjusted is not None:  # the verdict follows the adjusted p (deterministic pairs have none)
                row["verdict"] = DIFFERS if adjusted < 1 - CONFIDENCE else NOISE
        tables[study] = [rounded_floats(row) for row in rows]
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
    per_variant = {label: {metric: rounded_floats(asdict(summarize(series, CONFIDENCE)))
                           for metric, series in metrics.items()}
                   for label, metrics in values.items()}
    per_layer = {label: {metric: {layer: rounded_floats(asdict(summarize(series, CONFIDENCE)))
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
