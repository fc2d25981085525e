"""The report: the claims' verdicts and the BN analysis check, then per study its setting, the
regime it reached, its sweep, figure and tables, from committed metrics and the first seed's
model files.

Reads only deterministic files (no timings), so the report diffs cleanly too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from droplab.atomic import write_text
from droplab.config import Params, Run
from droplab.results.figures import claims_figure
from droplab.results.regimes import NOT_ABOVE
from droplab.results.report_figures import (
    bn_figures,
    confusion_section,
    first_seed_affine,
    load_plot_data,
    study_figure,
)
from droplab.results.report_tables import (
    CLAIM_COLUMNS,
    claim_row,
    claims_section,
    markdown_table,
    regime_lines,
    setting,
    summary_table,
    sweep_lines,
)
from droplab.results.verdict_words import NOT_TESTABLE

__all__ = ["CLAIM_COLUMNS", "build_report", "claim_row"]  # the pull-request review shows the same claims table
COMPARISON_COLUMNS = ["a", "b", "test", "n_a", "n_b", "difference", "ci_low", "ci_high", "p_value", "p_holm", "verdict"]
READING = f"""\
How to read these numbers. Test metrics are taken at each run's best-validation epoch, on the
whole 10,000-image test set, as the mean over the variant's seeds; each seed also draws its own
training images, so the spread over seeds includes data sampling. A `_ci95` column is the
half-width of the 95% t-interval over seeds ("-" where one seed cannot give one). `below_floor`
counts the runs whose test top-1 {NOT_ABOVE} the study's trained floor (a linear classifier on
the same images).

A claim is judged only in the regime it is about: every run it compares beats the trained floor,
and for a claim about a regularizer the same model without it overfits (claims.yaml declares the
thresholds). Otherwise it reads "{NOT_TESTABLE}", with the measurements. The tested
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


def first_runs(params: Params, labels: list[str]) -> dict[str, Run]:
    runs = params.label_runs()
    return {label: runs[label][0] for label in labels if label in runs}


def build_report(params: Params, metrics_dir: Path, plots_dir: Path, models_dir: Path, out_dir: Path,
                 dataset: str, classes: list[str]) -> pd.DataFrame:
    stats = json.loads((out_dir / "stats.json").read_text())
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
             *claims_section(stats["claims"], stats["checks"]["theory_gap"])]
    for name, study in params.studies.items():
        labels = stats["studies"][name] + [v for v in study.variants if v in untrained]
        if stats["studies"][name]:
            study_figure(name, study, load_plot_data(plots_dir, name), out_dir / "studies" / f"{name}.png")
        comparisons = pd.DataFrame(stats["comparisons"].get(name, []), columns=COMPARISON_COLUMNS)
        lines += [f"## {name}: {study.title}", "", *setting(params, name, study, metrics_dir, dataset), "",
                  *regime_lines(name, stats), "", *sweep_lines(name, stats, out_dir),
                  f"![{name}](studies/{name}.png)", "", markdown_table(table.loc[labels]), "",
                  "Exploratory: every pair on test top-1 (paired by seed where a claim declared the pair paired, "
                  "Welch's t otherwise), p-values Holm-adjusted within the study (`p_holm`, which the verdict "
                  "follows); no claim named most of these pairs before the run.", "",
                  markdown_table(comparisons), "",
                  *confusion_section(name, {label: runs[label] for label in stats["studies"][name]}, metrics_dir,
                                     plots_dir, out_dir, classes)]
    lines += ["## Every variant", "", markdown_table(table), "", "## Architectures and per-module FLOPs", ""]
    lines += [f"- `{v}`: [module tree](arch/{v}.txt), [FLOPs per module](arch/{v}.flops.txt)" for v in params.variants]
    lines += [f"- `{label}`: [BN parameters and variance shift](bn/{label}.png)"
              for label in shown if affine.get(label)]
    write_text(out_dir / "summary.md", "\n".join(lines) + "\n")
    return table
