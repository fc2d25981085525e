"""matplotlib figures, saved so that PNG bytes depend on the data alone (no version stamp)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from droplab.atomic import atomic_path  # noqa: E402

PNG_METADATA = {"Software": None}
COLORS = plt.get_cmap("tab20").colors


def save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=PNG_METADATA)
    plt.close(fig)


def _split_axes(ax, curves: dict[str, pd.DataFrame], column: str, title: str, ylabel: str) -> None:
    """One split's curve of every variant; a variant keeps its colour on every axis."""
    for index, (name, frame) in enumerate(curves.items()):
        ax.plot(frame["epoch"], frame[column], marker=".", color=COLORS[index % len(COLORS)], label=name)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def curves_axes(ax_train, ax_val, curves: dict[str, pd.DataFrame], metric: str, ylabel: str) -> None:
    _split_axes(ax_train, curves, f"train_{metric}", f"train {ylabel}", ylabel)
    _split_axes(ax_val, curves, f"val_{metric}", f"validation {ylabel}", ylabel)


def val_curve_axes(ax, curves: dict[str, pd.DataFrame], metric: str, ylabel: str) -> None:
    _split_axes(ax, curves, f"val_{metric}", f"validation {ylabel}", ylabel)


def table_axes(ax, frame: pd.DataFrame, title: str) -> None:
    ax.axis("off")
    ax.set_title(title, loc="left")
    cells = [[f"{v:.4f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v) for v in row]
             for row in frame.itertuples(index=False)]
    table = ax.table(cellText=cells, colLabels=list(frame.columns), loc="upper left", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(frame.columns))))


def bn_figure(variant: str, affine: dict[str, dict[str, list[float]]], ratio: dict[str, tuple[float, float]],
              stored: dict[str, float], path: Path) -> None:
    """Violins of learned gamma and beta, one per BN layer named on the axis (as S5 showed them),
    and per layer the two variance measures: dropout's own D (mean over seeds, with the seed
    interval where there is one) and the stored shift inference suffers (first seed)."""
    layers = list(affine)
    width = max(7, 0.4 * len(layers) + 3)
    fig, (ax_gamma, ax_beta, ax_shift) = plt.subplots(3, 1, figsize=(width, 13))
    if not layers:
        for ax in (ax_gamma, ax_beta, ax_shift):
            ax.axis("off")
        ax_gamma.text(0.5, 0.5, f"{variant}: no BatchNorm layers", ha="center", va="center")
        save(fig, path)
        return
    positions = list(range(1, len(layers) + 1))
    for ax, key in ((ax_gamma, "gamma"), (ax_beta, "beta")):
        ax.violinplot([affine[name][key] for name in layers], showmedians=True)
        ax.set_title(f"{variant}: learned BN {key} per layer (first seed)")
        ax.set_xticks(positions, layers, rotation=90, fontsize=7)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    means = [ratio[name][0] if name in ratio else float("nan") for name in layers]
    halves = [ratio[name][1] if name in ratio else 0.0 for name in layers]
    ax_shift.bar([x - 0.2 for x in positions], means, width=0.4, yerr=halves, capsize=2,
                 label="D = Var(dropout on) / Var(dropout off), BN in eval mode")
    ax_shift.bar([x + 0.2 for x in positions], [stored.get(name, float("nan")) for name in layers], width=0.4,
                 label="stored shift: max(running_var / eval-mode var, inverse)")
    ax_shift.axhline(1.0, color="black", linewidth=0.8)
    ax_shift.set_title(f"{variant}: variance shift per BN layer")
    ax_shift.set_xticks(positions, layers, rotation=90, fontsize=7)
    ax_shift.legend(fontsize=8)
    ax_shift.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def confusion_figure(title: str, matrices: dict[str, np.ndarray], classes: list[str], path: Path) -> None:
    """Each variant's test confusion matrix normalized by true class (a row is that class's
    recall spread over the predictions), side by side on one colour scale."""
    columns = min(len(matrices), 3)
    rows = -(-len(matrices) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 5 * rows), squeeze=False)
    for ax in axes.flat[len(matrices):]:
        ax.axis("off")
    for ax, (name, counts) in zip(axes.flat, matrices.items(), strict=False):
        normalized = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(normalized, vmin=0.0, vmax=1.0, cmap="Blues")
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="share of the true class")
    fig.suptitle(title)
    save(fig, path)


def sweep_figure(title: str, rates: list[float], series: dict[str, list[tuple[float, float, float]]],
                 selected: float, ylabel: str, path: Path) -> None:
    """A swept metric against the dropout rate, one line per swept variant: the seed mean with its
    95% interval (low, mean, high per rate), and the rate selected on validation marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, (name, points) in enumerate(series.items()):
        low, mean, high = (np.array(column) for column in zip(*points, strict=True))
        ax.errorbar(rates, mean, yerr=[mean - low, high - mean], marker="o", capsize=3,
                    color=COLORS[2 * index % len(COLORS)], label=name)
    ax.axvline(selected, color="black", linestyle=":", label=f"selected p = {selected:g}")
    ax.set_xlabel("dropout rate p")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
