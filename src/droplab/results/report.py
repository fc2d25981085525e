"""The report: the claims' verdicts and the BN analysis check, then per study its setting, the
regime it reached, its sweep, figure and tables, from committed metrics and the first seed's
model files.

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
from droplab.config import Params, Run, Study
from droplab.models.resnet_spec import PUBLISHED_CHANNELS
from droplab.results.figures import (
    band_axes,
    bn_figure,
    claims_figure,
    colours,
    confusion_figure,
    interval_axes,
    legend_handles,
    save,
    sweep_figure,
)
from droplab.run_files import CURVES
from droplab.training import live

ACCURACY_COLUMNS = ["variant", "seeds", "below_floor", "test_acc1", "test_acc1_ci95", "test_acc5", "test_f1_macro",
                    "test_loss"]
PROFILE_COLUMNS = ["params", "flops"]
BN_COLUMNS = ["dropout_D", "dropout_D_ci95", "stored_shift", "recal_gain", "recal_gain_ci95", "recal_vs_twin",
              "recal_vs_twin_ci95"]
BN_METRICS = {"dropout_D": "bn.dropout_variance_ratio_blocks", "stored_shift": "bn.stored_variance_shift_blocks",
              "recal_gain": "bn.recal_gain", "recal_vs_twin": "bn.recal_gain_vs_twin"}
COMPARISON_COLUMNS = ["a", "b", "test", "n_a", "n_b", "difference", "ci_low", "ci_high", "p_value", "p_holm", "verdict"]
CLAIM_COLUMNS = ["id", "study", "expect", "observed", "difference", "P(A>B)", "p (Holm)", "verdict"]
READING = """\
How to read these numbers. Test metrics are taken at each run's best-validation epoch, on the
whole 10,000-image test set, as the mean over the variant's seeds; each seed also draws its own
training images, so the spread over seeds includes data sampling. A `_ci95` column is the
half-width of the 95% t-interval over seeds ("-" where one seed cannot give one). `below_floor`
counts the runs whose test top-1 does not beat the study's trained floor (a linear classifier on
the same images).

A claim is judged only in the regime it is about: every run it compares beats the trained floor,
and for a claim about a regularizer the same model without it overfits (claims.yaml declares the
thresholds). Otherwise it reads "not testable at this scale", with the measurements. The tested
claims form two families (published findings; BN mechanisms); within each, p-values are
Holm-adjusted and the verdict follows the adjusted p. P(A>B) is the share of seeds (of seed pairs,
unpaired) in which the first variant scores higher. A decided accuracy claim is read again after
BN recalibration and on test loss; a verdict either reading changes is marked fragile.

- `dropout_D` is dropout's own variance shift (Li et al., CVPR 2019): at each BN of the residual
  blocks (or of the small models' blocks), Var(BN input with dropout on) / Var(BN input with dropout
  off), at the final weights, on the same batches, with every BN in eval mode. It is exactly 1
  where no dropout reaches the layer.
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


def _variant_of(label: str, runs: dict[str, list[Run]]) -> str:
    return runs[label][0].variant if label in runs else label


def summary_table(params: Params, labels: list[str], stats: dict, metrics_dir: Path) -> pd.DataFrame:
    """One row per label: test metrics, parameters and FLOPs, and the BN measures over seeds;
    a variant not trained at this scale keeps its profile and "-" elsewhere."""
    runs = params.label_runs()
    below = {label: seeds for study in stats["regimes"].values() for label, seeds in study["below_floor"].items()}
    rows = []
    for label in labels:
        profile = _read(metrics_dir / "profile" / f"{_variant_of(label, runs)}.json")
        row: dict = {"variant": label, "params": profile["params"], "flops": profile["flops"]}
        measured = stats["variants"].get(label)
        if measured is not None:
            test = {key.removeprefix("test."): stat for key, stat in measured.items() if key.startswith("test.")}
            row.update({"seeds": test["acc1"]["n"], "below_floor": len(below.get(label, [])),
                        **{f"test_{metric}": stat["mean"] for metric, stat in test.items()},
                        "test_acc1_ci95": _half_width(test["acc1"])})
            for column, metric in BN_METRICS.items():
                stat = measured.get(metric)
                row[column] = stat["mean"] if stat else None
                if f"{column}_ci95" in BN_COLUMNS:
                    row[f"{column}_ci95"] = _half_width(stat)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=ACCURACY_COLUMNS + PROFILE_COLUMNS + BN_COLUMNS)
    return frame.astype({"seeds": "Int64", "below_floor": "Int64"})  # counts, "-" where not trained


def first_runs(params: Params, labels: list[str]) -> dict[str, Run]:
    runs = params.label_runs()
    return {label: runs[label][0] for label in labels if label in runs}


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
    matrices = {label: live.read_confusion(run.path(plots_dir / "train", "") / live.CONFUSION, classes)
                for label, run in runs.items()}
    confusion_figure(f"{name}: test confusion matrices, first seed, normalized by true class", matrices, classes,
                     out_dir / "studies" / f"{name}_confusion.png")
    lines = [f"![{name} confusion matrices](studies/{name}_confusion.png)", ""]
    if len(runs) < 2:
        return lines
    f1 = pd.DataFrame({label: _read(run.path(metrics_dir / "train", ".json"))["test"]["f1_per_class"]
                       for label, run in runs.items()}).reindex(classes)
    f1["spread"] = f1.max(axis=1) - f1.min(axis=1)
    differing = f1.sort_values("spread", ascending=False, kind="stable").head(DIFFERING_CLASSES)
    lines += ["Classes whose test F1 differs most between the variants (first seed; spread = max - min):", "",
              _markdown(differing.rename_axis("class").reset_index()), ""]
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
    for label, run in runs.items():
        state = load_model_file(run.path(models_dir, ".pt"), torch.device("cpu"), run.variant)["state_dict"]
        layers = _read(run.path(metrics_dir / "bn", ".json"))["layers"]
        affine[label] = {layer: {"gamma": state[f"{layer}.weight"].tolist(), "beta": state[f"{layer}.bias"].tolist()}
                         for layer in layers if f"{layer}.weight" in state}
    return affine


def bn_figures(runs: dict[str, Run], affine: dict[str, dict], stats: dict, metrics_dir: Path, out_dir: Path) -> None:
    """report/bn/<label>.png for every label with BN layers: its first seed's gamma/beta, D over seeds."""
    for label, layers_affine in affine.items():
        if not layers_affine:
            continue
        layers = _read(runs[label].path(metrics_dir / "bn", ".json"))["layers"]
        per_layer = stats["layers"].get(label, {}).get("dropout_variance_ratio", {})
        ratio = {layer: (stat["mean"], _half_width(stat) or 0.0) for layer, stat in per_layer.items()}
        ratio.update({layer: (values["dropout_variance_ratio"], 0.0) for layer, values in layers.items()
                      if layer not in ratio})
        stored = {layer: values["stored_variance_shift"] for layer, values in layers.items()}
        bn_figure(label, layers_affine, ratio, stored, out_dir / "bn" / f"{label}.png")


def _width_note(params: Params, variants: list[str]) -> list[str]:
    """A narrowed ResNet or CNN, named beside its published width."""
    lines = []
    for variant in variants:
        spec, published = params.spec(variant), params.variants[variant]
        if spec.model == "resnet" and spec.narrowed():  # type: ignore[union-attr]
            lines.append(f"ResNets trained with stages of {spec.channels} channels (published: "  # type: ignore[union-attr]
                         f"{PUBLISHED_CHANNELS}) behind the published 64-channel stem; input resized to "
                         f"{spec.resize or 'its native'} px.")  # type: ignore[union-attr]
            break
        if spec.model == "cnn" and spec.channels != published.channels:  # type: ignore[union-attr]
            lines.append(f"CNNs trained at channels {spec.channels} (published: {published.channels}).")  # type: ignore[union-attr]
            break
    return lines


def setting(params: Params, name: str, study: Study, metrics_dir: Path, dataset: str) -> list[str]:
    """What the study ran at: data, subsets, schedule, seeds; which variants trained elsewhere or not at all."""
    scale = study.scale(params.scale)
    own = [v for v in study.variants if params.home_study(v) == name and params.skipped_at_scale(v) is None]
    lines = []
    if own:
        cfg = params.resolve(own[0]).train
        sizes = _read(params.variant_runs(own[0])[0].path(metrics_dir / "train", ".json"))["sizes"]
        schedule = cfg.schedule
        shape = {"cosine": "cosine to 0", "step": f"x{schedule.gamma:g} at epochs {schedule.milestones}",
                 "constant": "constant"}[schedule.name]
        published = f" (published on {scale.dataset})" if scale.dataset and scale.dataset != dataset else ""
        extras = f", momentum {cfg.momentum:g}" if cfg.optimizer == "sgd" else ""
        extras += f", weight decay {cfg.weight_decay:g}" if cfg.weight_decay else ""
        lines.append(f"Setting (scale `{params.scale}`): {dataset}{published}; {sizes['train']:,} train images "
                     f"(drawn anew for each seed) / {sizes['val']:,} val / {sizes['test']:,} test; {cfg.epochs} "
                     f"epoch(s) of batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}{extras}, {shape}"
                     f"{f' after {schedule.warmup_steps} warmup steps' if schedule.warmup_steps else ''}; "
                     f"seeds {', '.join(map(str, params.seeds_of(own[0])))}.")
    lines += _width_note(params, own)
    for variant in study.variants:
        home = params.home_study(variant)
        if (reason := params.skipped_at_scale(variant)) is not None:
            lines.append(f"`{variant}` is not trained at scale `{params.scale}`: {reason}.")
        elif home != name:
            lines.append(f"`{variant}` is trained at {home}'s setting (its first study), under "
                         f"{len(params.seeds_of(variant))} seeds.")
    return lines


def regime_lines(name: str, stats: dict) -> list[str]:
    """The study's regime measurements: its floor, the runs below it, each named variant's overfitting."""
    measured = stats["regimes"][name]
    floor = measured["floor"]
    if floor is None:
        lines = ["Regime: claims.yaml declares no trained floor for this study."]
    elif floor["value"] is None:
        lines = [f"Regime: no trained floor ({floor['source']})."]
    else:
        below = measured["below_floor"]
        runs = "; ".join(f"`{label}` seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"
                         for label, seeds in below.items())
        lines = [f"Regime. Trained floor {floor['value']:.4f} ({floor['source']}): "
                 + (f"at or below it: {runs}." if below else "every run of the study beats it.")]
    for label, overfit in measured["overfitting"].items():
        lines.append(f"Overfitting of `{label}`: {'yes' if overfit['overfits'] else 'no'}: {overfit['text']}.")
    return [" ".join(lines)]


def sweep_lines(name: str, stats: dict, out_dir: Path) -> list[str]:
    """The selected rate, on which split and by what; every rate's validation metric (figure and
    table) and test top-1, which played no part in the choice."""
    sweep = stats["sweeps"].get(name)
    if sweep is None:
        return []
    rates = [int(tag.removeprefix("p")) / 100 for tag in sweep["rates"]]
    swept = list(sweep["labels"])
    series = {variant: [(stat["ci_low"] if stat["ci_low"] is not None else stat["mean"], stat["mean"],
                         stat["ci_high"] if stat["ci_high"] is not None else stat["mean"])
                        for stat in (by_variant[variant] for by_variant in sweep["rates"].values())]
              for variant in swept}
    sweep_figure(f"{name}: validation {sweep['metric'].removeprefix('val.')} against p\n(seed mean, 95% interval)",
                 rates, series, sweep["selected"], sweep["metric"],
                 out_dir / "studies" / f"{name}_sweep.png")
    rows = [{"p": rate, **{f"{variant} {sweep['metric']}": stat["mean"] for variant, stat in by_variant.items()},
             **{f"{variant} test.acc1": stats["variants"][f"{variant}_{tag}"]["test.acc1"]["mean"]
                for variant in swept}}
            for rate, (tag, by_variant) in zip(rates, sweep["rates"].items(), strict=True)]
    best = "lowest" if sweep["metric"].endswith("loss") else "highest"
    return [f"Dropout rate selected on the validation split: p = {sweep['selected']:g}, the {best} mean "
            f"{sweep['metric']} of `{sweep['select']}` over its seeds (test top-1 played no part); the study's "
            f"claims and tables read {', '.join(f'`{v}` as `{label}`' for v, label in sweep['labels'].items())}.",
            "", f"![{name} sweep](studies/{name}_sweep.png)", "", _markdown(pd.DataFrame(rows)), ""]


def _markdown(frame: pd.DataFrame) -> str:
    """A table with "-" where a value does not exist (an interval of one seed, BN figures without BN)."""
    cells = frame.astype(object).where(frame.notna(), None)
    return cells.to_markdown(index=False, floatfmt=".4f", intfmt=",", missingval="-")


def claim_row(claim: dict) -> dict:
    """A claim's row of the claims tables (the report's and the pull-request review's)."""
    p = claim["p_value"]
    holm = "-" if p is None else f"{p:.3g} ({claim['p_holm']:.3g})" if claim["p_holm"] is not None else f"{p:.3g}"
    return {"id": claim["id"], "study": claim["study"], "expect": claim["expect"], "observed": claim["observed"] or "-",
            "difference": claim["difference"] or "-", "P(A>B)": claim["superiority"] or "-", "p (Holm)": holm,
            "verdict": claim["verdict"]}


def _claims_section(claims: list[dict], check: dict) -> list[str]:
    lines = []
    for title, mechanism in (("Published findings, judged on this run's seeds", False),
                             ("Mechanism claims (dropout's variance shift and BN recalibration)", True)):
        chosen = [claim for claim in claims if claim["mechanism"] == mechanism]
        decided = [claim for claim in chosen if claim["verdict"].split(" ")[0] in ("confirmed", "contradicted")]
        tested = sum(claim["p_value"] is not None for claim in chosen)
        frame = pd.DataFrame([claim_row(claim) for claim in chosen], columns=CLAIM_COLUMNS)
        lines += [f"### {title}", "", f"{len(decided)} of {len(chosen)} decided; {tested} tested in their regime "
                  "(one Holm family).", "", frame.to_markdown(index=False) if len(frame) else "No claims.", ""]
        notes = [f"- `{claim['id']}`: " + "; ".join(f"{reading}: {verdict}"
                                                  for reading, verdict in claim["sensitivity"].items())
                 for claim in chosen if claim["sensitivity"]]
        notes += [f"- `{claim['id']}` undecided: {claim['power']}" for claim in chosen
                  if claim["power"] and claim["verdict"].startswith("inconclusive")]
        lines += (["Other readings of the decided claims, and what the undecided ones could have seen:", "", *notes, ""]
                  if notes else [])
    lines += ["### BN analysis check", "", _check_line(check), ""]
    return lines


def _check_line(check: dict) -> str:
    if not check["layers_checked"]:
        return ("Where dropout feeds BN directly, measured D must equal (v' + p c'^2) / ((1 - p) v): no trained "
                "variant of this run has dropout directly before a BN, so there was nothing to check.")
    if not check["passed"]:
        first = check["failures"][0]
        return (f"**ERROR: the BN analysis check FAILED** at {len(check['failures'])} of {check['layers_checked']} "
                f"layers (first: {first['run']}, {first['layer']}, gap {first['theory_gap']}): where dropout feeds BN "
                f"directly, measured D must equal (v' + p c'^2) / ((1 - p) v) within ±{check['tolerance']:g}. The "
                "variance-shift numbers of this run are not to be trusted.")
    return (f"Where dropout feeds BN directly, measured D against (v' + p c'^2) / ((1 - p) v) at "
            f"{check['layers_checked']} layers of the runs, tolerance ±{check['tolerance']:g}: passed (largest gap "
            f"{check['largest_gap']:.2g}).")


def build_report(params: Params, metrics_dir: Path, plots_dir: Path, models_dir: Path, out_dir: Path,
                 dataset: str, classes: list[str]) -> pd.DataFrame:
    stats = _read(out_dir / "stats.json")
    shown = list(dict.fromkeys(label for labels in stats["studies"].values() for label in labels))
    runs = first_runs(params, shown)
    affine = first_seed_affine(runs, metrics_dir, models_dir)
    untrained = [v for v in params.variants if params.skipped_at_scale(v) is not None]
    table = summary_table(params, shown + untrained, stats, metrics_dir).set_index("variant", drop=False)
    bn_figures(runs, affine, stats, metrics_dir, out_dir)
    claims_figure(pd.read_csv(plots_dir / "claims.tsv", sep="\t", keep_default_na=False, na_values=[""]),
                  out_dir / "claims.png")
    lines = ["# droplab report", "", f"Scale `{params.scale}` on {dataset}.", "", READING,
             "## Claims", "", "![claims](claims.png)", "",
             *_claims_section(stats["claims"], stats["checks"]["theory_gap"])]
    for name, study in params.studies.items():
        labels = stats["studies"][name] + [v for v in study.variants if v in untrained]
        if stats["studies"][name]:
            study_figure(name, study, load_plot_data(plots_dir, name), out_dir / "studies" / f"{name}.png")
        comparisons = pd.DataFrame(stats["comparisons"].get(name, []), columns=COMPARISON_COLUMNS)
        lines += [f"## {name}: {study.title}", "", *setting(params, name, study, metrics_dir, dataset), "",
                  *regime_lines(name, stats), "", *sweep_lines(name, stats, out_dir),
                  f"![{name}](studies/{name}.png)", "", _markdown(table.loc[labels]), "",
                  "Exploratory: every pair on test top-1 (paired by seed where a claim declared the pair paired, "
                  "Welch's t otherwise), p-values Holm-adjusted within the study (`p_holm`, which the verdict "
                  "follows); no claim named most of these pairs before the run.", "",
                  _markdown(comparisons), "",
                  *confusion_section(name, {label: runs[label] for label in stats["studies"][name]}, metrics_dir,
                                     plots_dir, out_dir, classes)]
    lines += ["## Every variant", "", _markdown(table), "", "## Architectures and per-module FLOPs", ""]
    lines += [f"- `{v}`: [module tree](arch/{v}.txt), [FLOPs per module](arch/{v}.flops.txt)" for v in params.variants]
    lines += [f"- `{label}`: [BN parameters and variance shift](bn/{label}.png)"
              for label in shown if affine.get(label)]
    write_text(out_dir / "summary.md", "\n".join(lines) + "\n")
    return table
