"""matplotlib figures, saved so that PNG bytes depend on the data alone (no version stamp)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from droplab.atomic import atomic_path  # noqa: E402
from droplab.results.verdict_words import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_RUN, UNTESTABLE  # noqa: E402

PNG_METADATA = {"Software": None}
# Vega's "tableau10", the scheme of the DVC plot templates (.dvc/plots/): a variant has one colour,
# the same in a study's PNGs and in `dvc plots show`, given by its place in the study's list
COLORS = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
          "#bab0ac")
VERDICT_COLORS = {CONFIRMED: "#59a14f", CONTRADICTED: "#e15759", INCONCLUSIVE: "#4e79a7",
                  UNTESTABLE: "#bab0ac", NOT_RUN: "#d4d4d4"}  # as in .dvc/plots/droplab_claims.json
SPLIT_STYLES = {"train": "-", "val": "--"}


def save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=PNG_METADATA)
    plt.close(fig)


def colours(labels: list[str]) -> dict[str, str]:
    return {label: COLORS[index % len(COLORS)] for index, label in enumerate(labels)}


def band_axes(ax, curves: pd.DataFrame, colour: dict[str, str], ylabel: str) -> None:
    """Each variant's seed-mean curve with its 95% band, train solid and validation dashed; a
    curve of one epoch is a point with its interval (a line needs two)."""
    for (label, split), rows in curves.groupby(["variant", "split"], sort=False):
        if len(rows) == 1:
            mean = rows["mean"].to_numpy()
            ax.errorbar(rows["epoch"], mean, yerr=[mean - rows["low"].to_numpy(), rows["high"].to_numpy() - mean],
                        fmt="o" if split == "train" else "s", mfc="none" if split == "val" else None,
                        color=colour[label], capsize=3)
            continue
        ax.plot(rows["epoch"], rows["mean"], SPLIT_STYLES[split], color=colour[label], linewidth=1.4)
        ax.fill_between(rows["epoch"], rows["low"], rows["high"], color=colour[label], alpha=0.15, linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def legend_handles(colour: dict[str, str]) -> list[Line2D]:
    """One entry per variant (its colour) and one per split (its line style)."""
    return ([Line2D([], [], color=value, linewidth=3, label=label) for label, value in colour.items()]
            + [Line2D([], [], color="black", linestyle=style, label=split) for split, style in SPLIT_STYLES.items()])


def interval_axes(ax, rows: pd.DataFrame, colour: dict[str, str], xlabel: str) -> None:
    """Each variant's mean with its 95% interval on an axis fitted to them (not from zero), so
    that the differences a claim turns on are visible."""
    positions = range(len(rows))[::-1]  # the study's first variant on top
    for y, row in zip(positions, rows.itertuples(index=False), strict=True):
        ax.errorbar([row.mean], [y], xerr=[[row.mean - row.low], [row.high - row.mean]], fmt="o",
                    color=colour[row.variant], capsize=4)
    ax.set_yticks(list(positions), list(rows["variant"]))
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, axis="x")


def claims_figure(claims: pd.DataFrame, path: Path) -> None:
    """Every claim step's paired difference with its interval, coloured by verdict; a claim that
    was not tested is named with its verdict where its interval would be."""
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(claims) + 1.6))
    positions = range(len(claims))[::-1]
    for y, row in zip(positions, claims.itertuples(index=False), strict=True):
        colour = VERDICT_COLORS.get(row.verdict, "black")
        if pd.isna(row.difference):
            ax.text(0, y, f"{row.verdict} ({row.regime})", color="dimgray", va="center", ha="center", fontsize=8,
                    bbox={"facecolor": "white", "edgecolor": "none"})
            continue
        low = row.difference if pd.isna(row.low) else row.low
        high = row.difference if pd.isna(row.high) else row.high
        ax.errorbar([row.difference], [y], xerr=[[row.difference - low], [high - row.difference]], fmt="o",
                    color=colour, capsize=4)
    ax.axvline(0, color="black", linewidth=0.8, linestyle=":")
    ax.set_yticks(list(positions), list(claims["claim"]), fontsize=8)
    ax.set_ylim(-0.7, len(claims) - 0.3)
    ax.set_xlabel("paired difference in the claim's metric (first named minus second), with its interval")
    ax.legend(handles=[Line2D([], [], marker="o", linestyle="", color=value, label=word)
                       for word, value in VERDICT_COLORS.items()], fontsize=8, loc="lower right")
    ax.set_title("The studies' claims on this run")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    save(fig, path)


def bn_figure(variant: str, affine: dict[str, dict[str, list[float]]], ratio: dict[str, tuple[float, float]],
              stored: dict[str, float], path: Path) -> None:
    """Violins of learned gamma and beta, one per BN layer named on the axis (as S5 showed them),
    and per layer the two variance measures: dropout's own D (mean over seeds, with the seed
    interval where there is one) and the stored shift inference suffers (first seed)."""
    layers = list(affine)
    width = max(7, 0.4 * len(layers) + 3)
    fig, (ax_gamma, ax_beta, ax_shift) = plt.subplots(3, 1, figsize=(width, 13))
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
                    color=COLORS[index % len(COLORS)], label=name)
    ax.axvline(selected, color="black", linestyle=":", label=f"selected p = {selected:g}")
    ax.set_xlabel("dropout rate p")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
