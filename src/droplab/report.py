"""The report: one table of every variant, one figure per study, from committed metrics and plots.

Reads only deterministic files (no timings), so the report diffs cleanly too.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from droplab.atomic import write_text
from droplab.config import Params, Study
from droplab.figures import curves_axes, save, table_axes, val_curve_axes

ACCURACY_COLUMNS = ["variant", "test_acc1", "test_acc5", "test_f1_macro", "test_loss", "best_epoch"]
PROFILE_COLUMNS = ["params", "flops"]
BN_COLUMNS = ["variance_shift", "stored_shift", "recal_acc1_gain"]


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def summary_table(variants: list[str], metrics_dir: Path) -> pd.DataFrame:
    rows = []
    for name in variants:
        train = _read(metrics_dir / "train" / f"{name}.json")
        profile = _read(metrics_dir / "profile" / f"{name}.json")
        bn = _read(metrics_dir / "bn" / f"{name}.json")
        recal = bn["recalibration"] or {}
        rows.append({"variant": name, **{f"test_{k}": v for k, v in train["test"].items()},
                     "best_epoch": train["best_epoch"], "params": profile["params"], "flops": profile["flops"],
                     "variance_shift": bn["variance_shift_mean"], "stored_shift": bn["stored_variance_shift_mean"],
                     "recal_acc1_gain": recal.get("test_acc1_gain")})
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS + PROFILE_COLUMNS + BN_COLUMNS)


def load_curves(variants: list[str], plots_dir: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(plots_dir / "train" / f"{name}.tsv", sep="\t") for name in variants}


def study_figure(name: str, study: Study, table: pd.DataFrame, curves: dict[str, pd.DataFrame], path: Path) -> None:
    """Train/validation loss and top-1, validation top-5 (S1's measure) of every variant of the
    study, and its result table."""
    fig = plt.figure(figsize=(14, 15))
    grid = fig.add_gridspec(4, 2, height_ratios=[1, 1, 1, 0.55])
    axes = [[fig.add_subplot(grid[row, col]) for col in range(2)] for row in range(2)]
    curves_axes(*axes[0], curves, "loss", "cross-entropy loss")
    curves_axes(*axes[1], curves, "acc1", "top-1 accuracy")
    val_top5 = fig.add_subplot(grid[2, 0])
    val_curve_axes(val_top5, curves, "acc5", "top-5 accuracy")
    axes[0][1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    columns = ACCURACY_COLUMNS + (PROFILE_COLUMNS if study.profile_table else [])
    table_axes(fig.add_subplot(grid[3, :]), table[columns], "test metrics at the best validation epoch"
               + ("; FLOPs are fvcore multiply-adds" if study.profile_table else ""))
    fig.suptitle(f"{name}: {study.title}")
    fig.tight_layout()
    save(fig, path)


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4f", intfmt=",", missingval="-")


def build_report(params: Params, metrics_dir: Path, plots_dir: Path, out_dir: Path) -> pd.DataFrame:
    variants = list(params.variants)
    table = summary_table(variants, metrics_dir).set_index("variant", drop=False)
    curves = load_curves(variants, plots_dir)
    lines = ["# droplab report", "",
             "Test metrics at the best-validation epoch. FLOPs are fvcore multiply-adds at batch 1.",
             "`variance_shift`: mean over BN layers of max(a/b, b/a) (a = running variance, b = eval-mode "
             "input variance); `recal_acc1_gain`: test acc1 after minus before BN recalibration.", ""]
    for name, study in params.studies.items():
        study_figure(name, study, table.loc[study.variants], {v: curves[v] for v in study.variants},
                     out_dir / "studies" / f"{name}.png")
        lines += [f"## {name}: {study.title}", "", f"![{name}](studies/{name}.png)", "",
                  _markdown(table.loc[study.variants]), ""]
    lines += ["## Every variant", "", _markdown(table), "", "## Architectures and per-module FLOPs", ""]
    lines += [f"- `{v}`: [module tree](arch/{v}.txt), [FLOPs per module](arch/{v}.flops.txt), "
              f"[BN parameters and variance shift](bn/{v}.png)" for v in variants]
    write_text(out_dir / "summary.md", "\n".join(lines) + "\n")
    return table
