"""The report: the claims' verdicts, then per study its setting, figure and tables, from committed
metrics, plots and the first seed's model files.

Reads only deterministic files (no timings), so the report diffs cleanly too.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from droplab.analysis.analyze import load_model_file
from droplab.atomic import write_text
from droplab.config import Params, Study
from droplab.results.figures import bn_figure, confusion_figure, curves_axes, save, table_axes, val_curve_axes
from droplab.training import live

ACCURACY_COLUMNS = ["variant", "seeds", "untrained", "test_acc1", "test_acc1_ci95", "test_acc5", "test_f1_macro",
                    "test_loss"]
PROFILE_COLUMNS = ["params", "flops"]
BN_COLUMNS = ["dropout_D", "dropout_D_ci95", "stored_shift", "recal_gain", "recal_gain_ci95", "recal_vs_twin",
              "recal_vs_twin_ci95"]
BN_METRICS = {"dropout_D": "bn.dropout_variance_ratio_blocks", "stored_shift": "bn.stored_variance_shift_blocks",
              "recal_gain": "bn.recal_gain", "recal_vs_twin": "bn.recal_gain_vs_twin"}
COMPARISON_COLUMNS = ["a", "b", "n_a", "n_b", "difference", "ci_low", "ci_high", "p_value", "p_holm", "verdict"]
CLAIM_COLUMNS = ["study", "id", "says", "metric", "expect", "numbers", "verdict", "detail"]
READING = """\
How to read these numbers. Test metrics are taken at each run's best-validation epoch, as the mean
over the variant's seeds; a `_ci95` column is the half-width of the 95% t-interval over seeds, "-"
where one seed cannot give one. A run is **untrained** when it ends near chance (test top-1 under
1.5x chance, or a test loss of at least ln(classes)); a claim resting on one cannot be confirmed.

- `dropout_D` is dropout's own variance shift (Li et al., CVPR 2019): at each BN of the residual
  blocks (or of the small models' blocks), Var(BN input with dropout on) / Var(BN input with dropout
  off), at the final weights, on the same batches, with every BN in eval mode. It is exactly 1
  where no dropout reaches the layer; for dropout(p) straight into BN it is (v + p c^2) / ((1 - p) v)
  per channel of mean c and variance v. Stem and shortcut BNs are in the per-layer figures, not here.
- `stored_shift` is what inference suffers: BN's stored running variance against the variance its
  input has in eval mode, max(a/b, b/a). It also contains the running average's lag and upstream BNs
  switching to stored statistics, so a network without dropout does not score 1.
- `recal_gain`: test top-1 after recomputing BN statistics with dropout off, minus before;
  `recal_vs_twin` subtracts the same seed's gain of the variant's no-dropout twin, leaving the part
  due to dropout rather than to stale statistics.
"""


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _half_width(stat: dict | None) -> float | None:
    return None if stat is None or stat["ci_high"] is None else (stat["ci_high"] - stat["ci_low"]) / 2


def summary_table(params: Params, variants: list[str], stats: dict, metrics_dir: Path) -> pd.DataFrame:
    """One row per variant: test metrics, parameters and FLOPs, and the BN measures over seeds;
    a variant not trained at this scale keeps its profile and "-" elsewhere."""
    rows = []
    for name in variants:
        profile = _read(metrics_dir / "profile" / f"{name}.json")
        row: dict = {"variant": name, "params": profile["params"], "flops": profile["flops"]}
        measured = stats["variants"].get(name)
        if measured is not None:
            test = {key.removeprefix("test."): stat for key, stat in measured.items() if key.startswith("test.")}
            row.update({"seeds": test["acc1"]["n"], "untrained": len(stats["untrained"].get(name, [])),
                        **{f"test_{metric}": stat["mean"] for metric, stat in test.items()},
                        "test_acc1_ci95": _half_width(test["acc1"])})
            for column, metric in BN_METRICS.items():
                stat = measured.get(metric)
                row[column] = stat["mean"] if stat else None
                if f"{column}_ci95" in BN_COLUMNS:
                    row[f"{column}_ci95"] = _half_width(stat)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=ACCURACY_COLUMNS + PROFILE_COLUMNS + BN_COLUMNS)
    return frame.astype({"seeds": "Int64", "untrained": "Int64"})  # counts, "-" where not trained


def load_curves(params: Params, variants: list[str], plots_dir: Path) -> dict[str, pd.DataFrame]:
    """The first seed's learning curves of every trained variant, from its DVCLive folder."""
    return {name: live.read_curves(params.first_run(name).path(plots_dir / "train", "")) for name in variants}


DIFFERING_CLASSES = 3  # classes listed where a study's variants differ most


def confusion_section(params: Params, name: str, study: Study, metrics_dir: Path, plots_dir: Path, out_dir: Path,
                      classes: list[str]) -> list[str]:
    """The study's first-seed test confusion matrices (normalized, report/studies/<study>_confusion.png)
    and the classes whose test F1 differs most between its variants."""
    shown = [variant for variant in study.variants if variant in params.trained_variants()]
    if not shown:
        return []
    runs = {variant: params.first_run(variant) for variant in shown}
    matrices = {variant: live.read_confusion(run.path(plots_dir / "train", "") / live.CONFUSION, classes)
                for variant, run in runs.items()}
    confusion_figure(f"{name}: test confusion matrices, first seed, normalized by true class", matrices, classes,
                     out_dir / "studies" / f"{name}_confusion.png")
    lines = [f"![{name} confusion matrices](studies/{name}_confusion.png)", ""]
    if len(shown) < 2:
        return lines
    f1 = pd.DataFrame({variant: _read(run.path(metrics_dir / "train", ".json"))["test"]["f1_per_class"]
                       for variant, run in runs.items()}).reindex(classes)
    f1["spread"] = f1.max(axis=1) - f1.min(axis=1)
    differing = f1.sort_values("spread", ascending=False, kind="stable").head(DIFFERING_CLASSES)
    lines += ["Classes whose test F1 differs most between the variants (first seed; spread = max - min):", "",
              _markdown(differing.rename_axis("class").reset_index()), ""]
    return lines


def study_figure(name: str, study: Study, table: pd.DataFrame, curves: dict[str, pd.DataFrame], path: Path) -> None:
    """Train/validation loss and top-1, validation top-5 (S1's measure) of every trained variant
    of the study, and its result table."""
    fig = plt.figure(figsize=(14, 15))
    grid = fig.add_gridspec(4, 2, height_ratios=[1, 1, 1, 0.55])
    axes = [[fig.add_subplot(grid[row, col]) for col in range(2)] for row in range(2)]
    curves_axes(*axes[0], curves, "loss", "cross-entropy loss")
    curves_axes(*axes[1], curves, "acc1", "top-1 accuracy")
    val_top5 = fig.add_subplot(grid[2, 0])
    val_curve_axes(val_top5, curves, "acc5", "top-5 accuracy")
    axes[0][1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    columns = ACCURACY_COLUMNS + (PROFILE_COLUMNS if study.profile_table else [])
    cells = table[columns].astype(object).where(table[columns].notna(), "-")
    table_axes(fig.add_subplot(grid[3, :]), cells, "test metrics at the best validation epoch, mean over "
               "seeds; curves: first seed" + ("; FLOPs are fvcore multiply-adds" if study.profile_table else ""))
    fig.suptitle(f"{name}: {study.title}")
    fig.tight_layout()
    save(fig, path)


def first_seed_affine(params: Params, metrics_dir: Path, models_dir: Path) -> dict[str, dict]:
    """Learned gamma and beta of every BN layer of each trained variant's first seed, from its
    model file (loaded weights-only). Read before anything is drawn, so a bad model file stops
    the report before it writes."""
    affine = {}
    for name in params.trained_variants():
        run = params.first_run(name)
        state = load_model_file(run.path(models_dir, ".pt"), torch.device("cpu"), name)["state_dict"]
        layers = _read(run.path(metrics_dir / "bn", ".json"))["layers"]
        affine[name] = {layer: {"gamma": state[f"{layer}.weight"].tolist(), "beta": state[f"{layer}.bias"].tolist()}
                        for layer in layers if f"{layer}.weight" in state}
    return affine


def bn_figures(params: Params, affine: dict[str, dict], stats: dict, metrics_dir: Path, out_dir: Path) -> None:
    """report/bn/<variant>.png for every trained variant: its first seed's gamma/beta, D over seeds."""
    for name, layers_affine in affine.items():
        layers = _read(params.first_run(name).path(metrics_dir / "bn", ".json"))["layers"]
        per_layer = stats["layers"].get(name, {}).get("dropout_variance_ratio", {})
        ratio = {layer: (stat["mean"], _half_width(stat) or 0.0) for layer, stat in per_layer.items()}
        ratio.update({layer: (values["dropout_variance_ratio"], 0.0) for layer, values in layers.items()
                      if layer not in ratio})
        stored = {layer: values["stored_variance_shift"] for layer, values in layers.items()}
        bn_figure(name, layers_affine, ratio, stored, out_dir / "bn" / f"{name}.png")


def setting(params: Params, name: str, study: Study, metrics_dir: Path, dataset: str) -> list[str]:
    """What the study ran at: data, subsets, schedule, seeds; which variants trained elsewhere or not at all."""
    scale = study.scale(params.scale)
    own = [v for v in study.variants if params.home_study(v) == name and params.skipped_at_scale(v) is None]
    lines = []
    if own:
        cfg = params.resolve(own[0]).train
        sizes = _read(params.first_run(own[0]).path(metrics_dir / "train", ".json"))["sizes"]
        schedule = cfg.schedule
        shape = {"cosine": "cosine to 0", "step": f"x{schedule.gamma:g} at epochs {schedule.milestones}",
                 "constant": "constant"}[schedule.name]
        published = f" (published on {scale.dataset})" if scale.dataset and scale.dataset != dataset else ""
        extras = f", momentum {cfg.momentum:g}" if cfg.optimizer == "sgd" else ""
        extras += f", weight decay {cfg.weight_decay:g}" if cfg.weight_decay else ""
        lines.append(f"Setting (scale `{params.scale}`): {dataset}{published}; {sizes['train']:,} train / "
                     f"{sizes['val']:,} val / {sizes['test']:,} test images; {cfg.epochs} epoch(s) of batch "
                     f"{cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}{extras}, {shape}"
                     f"{f' after {schedule.warmup_steps} warmup steps' if schedule.warmup_steps else ''}; "
                     f"seeds {', '.join(map(str, params.seeds_of(own[0])))}.")
    for variant in study.variants:
        home = params.home_study(variant)
        if (reason := params.skipped_at_scale(variant)) is not None:
            lines.append(f"`{variant}` is not trained at scale `{params.scale}`: {reason}.")
        elif home != name:
            lines.append(f"`{variant}` is trained at {home}'s setting (its first study), under "
                         f"{len(params.seeds_of(variant))} seeds.")
    return lines


def _markdown(frame: pd.DataFrame) -> str:
    """A table with "-" where a value does not exist (an interval of one seed, BN figures without BN)."""
    cells = frame.astype(object).where(frame.notna(), None)
    return cells.to_markdown(index=False, floatfmt=".4f", intfmt=",", missingval="-")


def _claims_section(claims: list[dict]) -> list[str]:
    lines = []
    for title, mechanism in (("Published findings, judged on this run's seeds", False),
                             ("Mechanism claims (dropout's variance shift and BN recalibration)", True)):
        chosen = [claim for claim in claims if claim["metric"].startswith("bn.") == mechanism]
        decided = sum(claim["verdict"] in ("confirmed", "contradicted") for claim in chosen)
        frame = pd.DataFrame(chosen, columns=CLAIM_COLUMNS)
        lines += [f"### {title}", "", f"{decided} of {len(chosen)} decided (confirmed or contradicted).", "",
                  frame.to_markdown(index=False) if len(frame) else "No claims.", ""]
    return lines


def build_report(params: Params, metrics_dir: Path, plots_dir: Path, models_dir: Path, out_dir: Path,
                 dataset: str, classes: list[str]) -> pd.DataFrame:
    affine = first_seed_affine(params, metrics_dir, models_dir)
    stats = _read(out_dir / "stats.json")
    variants = list(params.variants)
    table = summary_table(params, variants, stats, metrics_dir).set_index("variant", drop=False)
    trained = [name for name in variants if name in stats["variants"]]
    curves = load_curves(params, trained, plots_dir)
    bn_figures(params, affine, stats, metrics_dir, out_dir)
    lines = ["# droplab report", "", f"Scale `{params.scale}` on {dataset}.", "", READING,
             "## Claims", "", *_claims_section(stats["claims"])]
    for name, study in params.studies.items():
        study_figure(name, study, table.loc[study.variants], {v: curves[v] for v in study.variants if v in curves},
                     out_dir / "studies" / f"{name}.png")
        comparisons = pd.DataFrame(stats["comparisons"].get(name, []), columns=COMPARISON_COLUMNS)
        lines += [f"## {name}: {study.title}", "", *setting(params, name, study, metrics_dir, dataset), "",
                  f"![{name}](studies/{name}.png)", "", _markdown(table.loc[study.variants]), "",
                  "Exploratory: every pair on test top-1 (Welch's t over seeds), p-values Holm-adjusted within "
                  "the study (`p_holm`, which the verdict follows); no claim named these pairs before the run.", "",
                  _markdown(comparisons), "",
                  *confusion_section(params, name, study, metrics_dir, plots_dir, out_dir, classes)]
    lines += ["## Every variant", "", _markdown(table), "", "## Architectures and per-module FLOPs", ""]
    lines += [f"- `{v}`: [module tree](arch/{v}.txt), [FLOPs per module](arch/{v}.flops.txt)"
              + (f", [BN parameters and variance shift](bn/{v}.png)" if v in stats["variants"] else "")
              for v in variants]
    write_text(out_dir / "summary.md", "\n".join(lines) + "\n")
    return table
