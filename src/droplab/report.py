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

ACCURACY_COLUMNS = ["variant", "seeds", "test_acc1", "test_acc1_ci95", "test_acc5", "test_f1_macro", "test_loss"]
PROFILE_COLUMNS = ["params", "flops"]
BN_COLUMNS = ["variance_shift", "stored_shift", "recal_acc1_gain"]
COMPARISON_COLUMNS = ["a", "b", "metric", "n_a", "n_b", "difference", "ci_low", "ci_high", "verdict"]
CLAIM_COLUMNS = ["study", "id", "says", "metric", "expect", "numbers", "verdict"]


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _half_width(stat: dict) -> float | None:
    return None if stat["ci_high"] is None else (stat["ci_high"] - stat["ci_low"]) / 2


def summary_table(variants: list[str], stats: dict, metrics_dir: Path) -> pd.DataFrame:
    """One row per variant: test metrics (mean over seeds, and the 95% interval's half-width
    for acc1), parameters and FLOPs, and the first seed's BN analysis."""
    rows = []
    for name in variants:
        test = {key.removeprefix("test."): stat for key, stat in stats["variants"][name].items()
                if key.startswith("test.")}
        profile = _read(metrics_dir / "profile" / f"{name}.json")
        bn = _read(metrics_dir / "bn" / f"{name}.json")
        recal = bn["recalibration"] or {}
        rows.append({"variant": name, "seeds": test["acc1"]["n"],
                     **{f"test_{metric}": stat["mean"] for metric, stat in test.items()},
                     "test_acc1_ci95": _half_width(test["acc1"]),
                     "params": profile["params"], "flops": profile["flops"],
                     "variance_shift": bn["variance_shift_mean"], "stored_shift": bn["stored_variance_shift_mean"],
                     "recal_acc1_gain": recal.get("test_acc1_gain")})
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS + PROFILE_COLUMNS + BN_COLUMNS)


def load_curves(params: Params, plots_dir: Path) -> dict[str, pd.DataFrame]:
    """The first seed's learning curves of every variant."""
    return {name: pd.read_csv(params.first_run(name).path(plots_dir / "train", ".tsv"), sep="\t")
            for name in params.variants}


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
    table_axes(fig.add_subplot(grid[3, :]), table[columns], "test metrics at the best validation epoch, mean over "
               "seeds; curves: first seed" + ("; FLOPs are fvcore multiply-adds" if study.profile_table else ""))
    fig.suptitle(f"{name}: {study.title}")
    fig.tight_layout()
    save(fig, path)


def _markdown(frame: pd.DataFrame) -> str:
    """A table with "-" where a value does not exist (an interval of one seed, BN figures without BN)."""
    cells = frame.astype(object).where(frame.notna(), None)
    return cells.to_markdown(index=False, floatfmt=".4f", intfmt=",", missingval="-")


def build_report(params: Params, metrics_dir: Path, plots_dir: Path, out_dir: Path) -> pd.DataFrame:
    stats = _read(out_dir / "stats.json")
    variants = list(params.variants)
    table = summary_table(variants, stats, metrics_dir).set_index("variant", drop=False)
    curves = load_curves(params, plots_dir)
    claims = pd.DataFrame(stats["claims"], columns=CLAIM_COLUMNS)
    lines = ["# droplab report", "",
             f"Test metrics at each run's best-validation epoch, mean over the variant's seeds; `test_acc1_ci95` "
             f"is the half-width of the {stats['confidence']:.0%} t-interval (none with one seed). FLOPs are fvcore "
             "multiply-adds at batch 1. `variance_shift`: mean over BN layers of max(a/b, b/a) (a = running "
             "variance, b = eval-mode input variance), first seed; `recal_acc1_gain`: test acc1 after minus "
             "before BN recalibration. Comparisons: Welch's t over seeds on test acc1.", "",
             "## Claims of the original studies, checked at this run's scale", "",
             claims.to_markdown(index=False) if len(claims) else "No claims.", ""]
    for name, study in params.studies.items():
        study_figure(name, study, table.loc[study.variants], {v: curves[v] for v in study.variants},
                     out_dir / "studies" / f"{name}.png")
        comparisons = pd.DataFrame(stats["comparisons"].get(name, []), columns=COMPARISON_COLUMNS)
        lines += [f"## {name}: {study.title}", "", f"![{name}](studies/{name}.png)", "",
                  _markdown(table.loc[study.variants]), "", _markdown(comparisons), ""]
    lines += ["## Every variant", "", _markdown(table), "", "## Architectures and per-module FLOPs", ""]
    lines += [f"- `{v}`: [module tree](arch/{v}.txt), [FLOPs per module](arch/{v}.flops.txt), "
              f"[BN parameters and variance shift](bn/{v}.png)" for v in variants]
    write_text(out_dir / "summary.md", "\n".join(lines) + "\n")
    return table
