"""matplotlib figures, saved so that PNG bytes depend on the data alone (no version stamp)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
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


def bn_figure(variant: str, affine: dict[str, dict[str, list[float]]], shift: dict[str, float], path: Path) -> None:
    """Violins of learned gamma and beta, one per BN layer (as S5 showed them), and the
    per-layer variance shift as bars."""
    fig, (ax_gamma, ax_beta, ax_shift) = plt.subplots(3, 1, figsize=(max(6, 0.35 * len(affine) + 3), 10))
    layers = list(affine)
    if not layers:
        for ax in (ax_gamma, ax_beta, ax_shift):
            ax.axis("off")
        ax_gamma.text(0.5, 0.5, f"{variant}: no BatchNorm layers", ha="center", va="center")
        save(fig, path)
        return
    for ax, key in ((ax_gamma, "gamma"), (ax_beta, "beta")):
        ax.violinplot([affine[name][key] for name in layers], showmedians=True)
        ax.set_title(f"{variant}: learned BN {key} per layer")
        ax.set_xticks(range(1, len(layers) + 1), [""] * len(layers))
        ax.grid(alpha=0.3)
    ax_shift.bar(range(1, len(layers) + 1), [shift.get(name, float("nan")) for name in layers])
    ax_shift.axhline(1.0, color="black", linewidth=0.8)
    ax_shift.set_title(f"{variant}: variance shift max(a/b, b/a) per BN layer")
    ax_shift.set_xticks(range(1, len(layers) + 1), layers, rotation=90, fontsize=7)
    ax_shift.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)
