"""Every run's numbers, read once through the typed records (droplab.records) and named by the
metric table (droplab.metric_table): what the statistics, the claims and the plot data work on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from droplab.config import Params, Run
from droplab.metric_table import METRICS, SPLIT_METRICS, SPLITS
from droplab.records import BnReport, RunResult, load_bn_report, load_result
from droplab.run_files import RunFiles

SeriesByMetric = dict[str, dict[str, list[float]]]  # label -> metric key -> one value per seed
SeriesByLayer = dict[str, dict[str, dict[str, list[float]]]]  # label -> layer field -> BN layer -> one per seed
TWIN_GAIN = "bn.recal_gain_vs_twin"  # derived from two variants' runs, not read from one run's files


@dataclass
class Collected:
    """Every run's numbers, by label (a variant, or a swept variant at one rate), in seed order."""

    values: SeriesByMetric = field(default_factory=dict)
    layers: SeriesByLayer = field(default_factory=dict)
    seeds: dict[str, list[int]] = field(default_factory=dict)
    curves: dict[str, list[list[dict]]] = field(default_factory=dict)  # label -> each seed's history
    theory_gaps: list[dict] = field(default_factory=list)  # every directly dropout-fed BN layer of every run


def run_values(result: RunResult, bn: BnReport) -> dict[str, float | None]:
    """One run's value of every metric in the table (None: the run has no such measure, e.g. no
    BN), in the table's order; the twin gain needs another variant's run and is left out."""
    recalibration = bn.recalibration
    read = {f"{split}.{name}": getattr(getattr(result, split), name) for split in SPLITS for name in SPLIT_METRICS}
    read["bn.recal_gain"] = recalibration.test_acc1_gain if recalibration else None
    # top-1 after BN recalibration: without BN there is nothing to recalibrate
    read["recal.acc1"] = recalibration.test_acc1_after if recalibration else result.test.acc1
    for key, row in METRICS.items():
        if row.blocks_field is not None:
            read[key] = getattr(bn, row.blocks_field)
    return {key: read[key] for key in METRICS if key != TWIN_GAIN}


def _add_run(collected: Collected, run: Run, result: RunResult, bn: BnReport) -> None:
    label = run.label
    values = collected.values.setdefault(label, {})
    for key, value in run_values(result, bn).items():
        if value is not None:
            values.setdefault(key, []).append(value)
    blocks = {name: layer for name, layer in bn.layers.items() if layer.role == "block"}
    for row in METRICS.values():
        if row.layerwise and row.layer_field is not None:
            per_layer = collected.layers.setdefault(label, {}).setdefault(row.layer_field, {})
            for name, layer in blocks.items():
                per_layer.setdefault(name, []).append(getattr(layer, row.layer_field))
    collected.theory_gaps += [{"run": f"{label} seed {run.seed}", "layer": name, "theory_gap": layer.theory_gap}
                              for name, layer in bn.layers.items() if layer.fed_by_dropout == "direct"]
    collected.seeds.setdefault(label, []).append(run.seed)
    collected.curves.setdefault(label, []).append([row.model_dump() for row in result.history])


def collect(params: Params, metrics_dir: Path) -> Collected:
    """Per-seed values of every trained label, per-layer BN measures, curves and theory gaps."""
    collected = Collected()
    files = RunFiles(metrics=metrics_dir)
    for run in params.runs().values():
        _add_run(collected, run, load_result(files.result(run)), load_bn_report(files.bn_report(run)))
    _add_twin_gains(params, collected.values)
    return collected


def _add_twin_gains(params: Params, values: SeriesByMetric) -> None:
    """bn.recal_gain_vs_twin: a variant's recalibration gain minus its no-dropout twin's, seed by seed."""
    for study in params.studies.values():
        for variant, twin in study.twins.items():
            mine, theirs = values.get(variant, {}).get("bn.recal_gain"), values.get(twin, {}).get("bn.recal_gain")
            if mine and theirs:
                count = min(len(mine), len(theirs))
                values[variant][TWIN_GAIN] = [a - b for a, b in zip(mine[:count], theirs[:count], strict=True)]
