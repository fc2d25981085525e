"""The report's figures: each study's curves and intervals (from the plot data DVC shows), its
first-seed confusion matrices, and each label's BN figure from its first seed's model file."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from droplab.config import Run, Study
from droplab.confusion_file import read_confusion
from droplab.metric_table import LAYERWISE
from droplab.records import load_bn_report, load_result
from droplab.results.figures import (
    band_axes,
    bn_figure,
    colours,
    confusion_figure,
    interval_axes,
    legend_handles,
    save,
)
from droplab.results.report_tables import half_width, markdown_table
from droplab.run_files import CURVES, RunFiles
from droplab.torch_files import load_model_file

D_FIELD = LAYERWISE["bn.dropout_variance_ratio"].layer_field  # D per BN layer: stats.json's "layers"


def load_plot_data(plots_dir: Path, name: str) -> dict[str, pd.DataFrame]:
    """The study's curves (seed mean and band) and test intervals, as the aggregate stage wrote
    them for `dvc plots`: the report draws the same numbers DVC shows."""
    data = {metric: pd.read_csv(plots_dir / "curves" / f"{name}_{metric}.tsv", sep="\t") for metric in CURVES}
    data["test"] = pd.read_csv(plots_dir / "test" / f"{name}.tsv", sep="\t").rename(columns={"test_acc1": "mean"})
    return data


DIFFERING_CLASSES = 3  # classes listed where a study's variants differ most


def confusion_section(name: str, runs: dict[str, Run], metrics_dir: Path, plots_dir: Path, out_dir: Path,
                      classes: list[str]) -> list[str]:
    """The study's first-seed test confusion matrices (normalized, report/studies/<study>_confusion.png)
    and the classes whose test F1 differs most between its variants."""
    if not runs:
        return []
    matrices = {label: read_confusion(RunFiles(plots=plots_dir).confusion(run), classes)
                for label, run in runs.items()}
    confusion_figure(f"{name}: test confusion matrices, first seed, normalized by true class", matrices, classes,
                     out_dir / "studies" / f"{name}_confusion.png")
    lines = [f"![{name} confusion matrices](studies/{name}_confusion.png)", ""]
    if len(runs) < 2:
        return lines
    files = RunFiles(metrics=metrics_dir, plots=plots_dir)
    f1 = pd.DataFrame({label: load_result(files.result(run)).test.f1_per_class
                       for label, run in runs.items()}).reindex(classes)
    f1["spread"] = f1.max(axis=1) - f1.min(axis=1)
    differing = f1.sort_values("spread", ascending=False, kind="stable").head(DIFFERING_CLASSES)
    lines += ["Classes whose test F1 differs most between the variants (first seed; spread = max - min):", "",
              markdown_table(differing.rename_axis("class").reset_index()), ""]
    return lines


def study_figure(name: str, study: Study, data: dict[str, pd.DataFrame], path: Path) -> None:
    """The study's loss and top-1 curves (seed mean, 95% band; train solid, validation dashed) and
    its test top-1 with intervals, each variant in one colour throughout."""
    colour = colours(list(data["test"]["variant"]))
    fig = plt.figure(figsize=(14, 10))
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 0.16 * len(colour) + 0.5])
    for column, (metric, label) in enumerate(CURVES.items()):
        ax = fig.add_subplot(grid[0, column])
        band_axes(ax, data[metric], colour, label)
        ax.set_title(f"train and validation {label}, mean over seeds, 95% band")
    test = fig.add_subplot(grid[1, 0])
    interval_axes(test, data["test"], colour, "test top-1 accuracy at the best validation epoch")
    test.set_title("test top-1, mean over seeds with its 95% interval")
    legend = fig.add_subplot(grid[1, 1])
    legend.axis("off")
    legend.legend(handles=legend_handles(colour), loc="center left", fontsize=9)
    fig.suptitle(f"{name}: {study.title}")
    fig.tight_layout()
    save(fig, path)


def first_seed_affine(runs: dict[str, Run], metrics_dir: Path, models_dir: Path) -> dict[str, dict]:
    """Learned gamma and beta of every BN layer of each label's first seed, from its model file
    (loaded weights-only). Read before anything is drawn, so a bad model file stops the report
    before it writes."""
    affine = {}
    files = RunFiles(models=models_dir, metrics=metrics_dir)
    for label, run in runs.items():
        state = load_model_file(files.model(run), torch.device("cpu"), run.variant)["state_dict"]
        layers = load_bn_report(files.bn_report(run)).layers
        affine[label] = {layer: {"gamma": state[f"{layer}.weight"].tolist(), "beta": state[f"{layer}.bias"].tolist()}
                         for layer in layers if f"{layer}.weight" in state}
    return affine


def bn_figures(runs: dict[str, Run], affine: dict[str, dict], stats: dict, metrics_dir: Path, out_dir: Path) -> None:
    """report/bn/<label>.png for every label with BN layers: its first seed's gamma/beta, D over seeds."""
    for label, layers_affine in affine.items():
        if not layers_affine:
            continue
        layers = load_bn_report(RunFiles(metrics=metrics_dir).bn_report(runs[label])).layers
        per_layer = stats["layers"].get(label, {}).get(D_FIELD, {})
        ratio = {layer: (stat["mean"], half_width(stat) or 0.0) for layer, stat in per_layer.items()}
        ratio.update({layer: (values.dropout_variance_ratio, 0.0) for layer, values in layers.items()
                      if layer not in ratio})
        stored = {layer: values.stored_variance_shift for layer, values in layers.items()}
        bn_figure(label, layers_affine, ratio, stored, out_dir / "bn" / f"{label}.png")
