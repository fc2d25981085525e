"""`droplab review`: the markdown a pull request gets (posted by CML in .github/workflows/review.yml).

Metrics and params against a base revision come from DVC itself (`dvc metrics diff --md`,
`dvc params diff --md`); the plots of `dvc plots diff` are rendered to PNG here with
matplotlib, from the data DVC resolved, because a PR comment cannot run Vega.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from droplab.atomic import write_text
from droplab.pipeline.dvc_command import dvc
from droplab.results.figures import COLORS, band_axes, colours, legend_handles, save
from droplab.results.report import CLAIM_COLUMNS, claim_row

STATS = Path("report/stats.json")


def _axis_title(spec: dict, axis: str) -> str:
    """The first title a Vega-Lite spec gives `axis` (layers and facets nest their encodings)."""
    stack: list[object] = [spec]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            encoding = node.get("encoding")
            if isinstance(encoding, dict) and isinstance(encoding.get(axis), dict) and encoding[axis].get("title"):
                return str(encoding[axis]["title"])
            stack += list(node.values())
        elif isinstance(node, list):
            stack += node
    return ""


def render(plot_id: str, spec: dict, path: Path) -> bool:
    """Draw one `dvc plots diff` plot of droplab's templates as a PNG for the review; False if it
    has no data or is not one of them. Curves: a panel per revision; intervals (variants or claims): the revisions'
    points side by side, each revision in its own marker."""
    rows = pd.DataFrame(spec.get("data", {}).get("values", []))
    if rows.empty or not {"low", "high"} <= set(rows):  # not one of droplab's templates (an older revision's plot)
        return False
    revisions = list(dict.fromkeys(rows["rev"]))
    title = (spec.get("title") or {}).get("text", plot_id)
    if "split" in rows:
        rows[["epoch", "mean", "low", "high"]] = rows[["epoch", "mean", "low", "high"]].apply(pd.to_numeric)
        colour = colours(list(dict.fromkeys(rows["variant"])))
        fig, axes = plt.subplots(1, len(revisions), figsize=(6 * len(revisions) + 3, 4.5), sharey=True, squeeze=False)
        for ax, rev in zip(axes[0], revisions, strict=True):
            band_axes(ax, rows[rows["rev"] == rev], colour, _axis_title(spec, "y"))
            ax.set_title(rev)
        axes[0][-1].legend(handles=legend_handles(colour), fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        name = "variant" if "variant" in rows else "claim"
        value = "test_acc1" if "test_acc1" in rows else "difference"
        rows[[value, "low", "high"]] = rows[[value, "low", "high"]].apply(pd.to_numeric, errors="coerce")
        categories = list(dict.fromkeys(rows[name]))
        fig, ax = plt.subplots(figsize=(9, 0.5 * len(categories) + 1.5))
        step = 0.6 / len(revisions)
        for index, rev in enumerate(revisions):
            group = rows[(rows["rev"] == rev) & rows[value].notna()]
            middle = group[value].to_numpy()
            low, high = group["low"].fillna(group[value]).to_numpy(), group["high"].fillna(group[value]).to_numpy()
            positions = [len(categories) - 1 - categories.index(c) + 0.3 - index * step for c in group[name]]
            ax.errorbar(middle, positions, xerr=[middle - low, high - middle],
                        fmt="osD^"[index % 4], color=COLORS[index % len(COLORS)], capsize=3, label=rev)
        ax.set_yticks(range(len(categories))[::-1], categories, fontsize=8)
        ax.set_xlabel(_axis_title(spec, "x") or value)
        ax.grid(alpha=0.3, axis="x")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)
    return True


def _changed(spec: dict) -> bool:
    """True if the revisions' data differ (one revision alone counts as a change)."""
    rows = spec.get("data", {}).get("values", [])
    by_rev: dict[str, list] = {}
    for row in rows:
        by_rev.setdefault(row["rev"], []).append({k: v for k, v in row.items() if k != "rev"})
    return len({json.dumps(v, sort_keys=True) for v in by_rev.values()}) > 1 or len(by_rev) == 1


def _claims_table() -> str:
    if not STATS.exists():
        return "No claims: report/stats.json is missing (run `dvc repro`)."
    claims = json.loads(STATS.read_text())["claims"]
    return pd.DataFrame([claim_row(claim) for claim in claims], columns=CLAIM_COLUMNS).to_markdown(index=False)


def build_review(base: str, out_dir: Path) -> str:
    metrics = dvc("metrics", "diff", base, "--md").strip() or "No metric changed."
    params = dvc("params", "diff", base, "--md").strip() or "No parameter changed."
    plots = json.loads(dvc("plots", "diff", base, "--json"))
    images = []
    for plot_id, entries in plots.get("data", {}).items():
        spec = entries[0]["content"] if entries else {}
        filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(plot_id).stem if plot_id.endswith(".tsv") else plot_id)
        if spec and _changed(spec) and render(plot_id, spec, out_dir / "plots" / f"{filename}.png"):
            images.append(f"![{plot_id}](plots/{filename}.png)")
    text = "\n".join([
        f"## droplab: this change against `{base}`", "",
        "### Claims of the original studies (this revision)", "", _claims_table(), "",
        f"### Metrics (`dvc metrics diff {base} --md`)", "", metrics, "",
        f"### Params (`dvc params diff {base} --md`)", "", params, "",
        f"### Plots that changed (`dvc plots diff {base}`)", "", "\n".join(images) or "No plot changed.", ""])
    write_text(out_dir / "report.md", text)
    return text
