"""One table of every variant and the learning curves, from the committed metrics and plots.

Reads only deterministic files (no timings), so the report diffs cleanly too.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from droplab.atomic import atomic_path, write_text  # noqa: E402

TABLE_COLUMNS = ["variant", "test_acc1", "test_acc5", "test_f1_macro", "test_loss", "best_epoch", "params", "flops"]
PNG_METADATA = {"Software": None}  # no version stamp, so PNG bytes depend on the data alone


def summary_table(variants: list[str], metrics_dir: Path) -> pd.DataFrame:
    rows = []
    for name in variants:
        train = json.loads((metrics_dir / "train" / f"{name}.json").read_text())
        profile = json.loads((metrics_dir / "profile" / f"{name}.json").read_text())
        rows.append({"variant": name, **{f"test_{k}": v for k, v in train["test"].items()},
                     "best_epoch": train["best_epoch"], "params": profile["params"], "flops": profile["flops"]})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def load_curves(variants: list[str], plots_dir: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(plots_dir / "train" / f"{name}.tsv", sep="\t") for name in variants}


def plot_curves(curves: dict[str, pd.DataFrame], metric: str, ylabel: str, path: Path) -> None:
    fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(14, 4.5), sharey=True)
    colors = plt.get_cmap("tab20").colors
    for index, (name, frame) in enumerate(curves.items()):
        color = colors[index % len(colors)]
        ax_train.plot(frame["epoch"], frame[f"train_{metric}"], marker=".", color=color, label=name)
        ax_val.plot(frame["epoch"], frame[f"val_{metric}"], marker=".", color=color, label=name)
    for ax, split in ((ax_train, "train"), (ax_val, "validation")):
        ax.set_title(f"{split} {ylabel}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax_train.set_ylabel(ylabel)
    ax_val.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=PNG_METADATA)
    plt.close(fig)


def build_report(variants: list[str], metrics_dir: Path, plots_dir: Path, out_dir: Path) -> pd.DataFrame:
    table = summary_table(variants, metrics_dir)
    curves = load_curves(variants, plots_dir)
    plot_curves(curves, "loss", "cross-entropy loss", out_dir / "loss.png")
    plot_curves(curves, "acc1", "top-1 accuracy", out_dir / "acc1.png")
    text = "# droplab report\n\nTest metrics at the best-validation epoch; FLOPs are fvcore multiply-adds.\n\n"
    text += table.to_markdown(index=False, floatfmt=".4f") + "\n"
    write_text(out_dir / "summary.md", text)
    return table
