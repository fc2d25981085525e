"""`droplab review`: the markdown a pull request gets (posted by CML in .github/workflows/review.yml).

Metrics and params against a base revision come from DVC itself (`dvc metrics diff --md`,
`dvc params diff --md`); the plots of `dvc plots diff` are rendered to PNG here with
matplotlib, from the data DVC resolved, because a PR comment cannot run Vega.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from droplab.atomic import write_text
from droplab.pipeline.dvc_command import dvc
from droplab.results.figures import COLORS, save
from droplab.results.report import CLAIM_COLUMNS, claim_row
from droplab.run_files import CONFUSION

STATS = Path("report/stats.json")


def _find(node: object, key: str) -> Iterator[dict]:
    """Every dict value stored under `key` anywhere in a Vega-Lite spec (layers nest encodings)."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, dict):
                yield value
            yield from _find(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _find(item, key)


def _axis_title(spec: dict, axis: str) -> str:
    for encoding in _find(spec, "encoding"):
        if isinstance(encoding.get(axis), dict) and encoding[axis].get("title"):
            return str(encoding[axis]["title"])
    return ""


def render(plot_id: str, spec: dict, path: Path) -> bool:
    """Draw one `dvc plots diff` plot, every revision in its own line style; False if it has no data."""
    rows = pd.DataFrame(spec.get("data", {}).get("values", []))
    if rows.empty:
        return False
    x_field = next(_find(spec, "encoding"))["x"]["field"]
    title = (spec.get("title") or {}).get("text", plot_id)
    revisions = list(dict.fromkeys(rows["rev"]))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    # A line plot of files and fields: DVC puts the values in dvc_inferred_y_value when the fields
    # differ, under the one field's own name when every file shares it (DVCLive's files do).
    values = [column for column in rows if column not in {x_field, "rev", "filename", "field", "filename::field"}]
    y_column = "dvc_inferred_y_value" if "dvc_inferred_y_value" in rows else values[0] if (
        "filename" in rows and len(values) == 1) else None
    if y_column is not None:
        rows["x"] = pd.to_numeric(rows[x_field])
        rows["y"] = pd.to_numeric(rows[y_column])
        # DVC names the series by file and field when a plot overlays several files, by field alone otherwise
        key = next((column for column in ("filename::field", "field", "filename") if column in rows), None)
        if key is None:
            rows["series"], key = plot_id, "series"
        series = list(dict.fromkeys(rows[key]))
        for (rev, name), group in rows.groupby(["rev", key], sort=False):
            ax.plot(group["x"], group["y"], marker=".", linestyle=("-", "--", ":")[revisions.index(rev) % 3],
                    color=COLORS[series.index(name) % len(COLORS)], label=f"{name} ({rev})")
        ax.set_xlabel(_axis_title(spec, "x") or x_field)
        ax.set_ylabel(_axis_title(spec, "y"))
    else:  # horizontal bars: a quantitative x per nominal y
        y_field = next(_find(spec, "encoding"))["y"]["field"]
        categories = list(dict.fromkeys(rows[y_field]))
        height = 0.8 / len(revisions)
        for index, rev in enumerate(revisions):
            group = rows[rows["rev"] == rev]
            positions = [categories.index(c) + index * height for c in group[y_field]]
            ax.barh(positions, pd.to_numeric(group[x_field]), height=height, color=COLORS[index * 2], label=rev)
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(categories))], categories)
        ax.set_xlabel(_axis_title(spec, "x") or x_field)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
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
    images, confusions = [], []
    for plot_id, entries in plots.get("data", {}).items():
        spec = entries[0]["content"] if entries else {}
        filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", plot_id) + ".png"
        if not spec or not _changed(spec):
            continue
        if plot_id.endswith(CONFUSION):  # one per run: named, not drawn, or they would bury the curves
            confusions.append(f"`{plot_id}`")
        elif render(plot_id, spec, out_dir / "plots" / filename):
            images.append(f"![{plot_id}](plots/{filename})")
    if confusions:
        images.append(f"Test confusion matrices that changed ({len(confusions)}; `dvc plots diff {base}` draws "
                      f"them): {', '.join(confusions)}")
    text = "\n".join([
        f"## droplab: this change against `{base}`", "",
        "### Claims of the original studies (this revision)", "", _claims_table(), "",
        f"### Metrics (`dvc metrics diff {base} --md`)", "", metrics, "",
        f"### Params (`dvc params diff {base} --md`)", "", params, "",
        f"### Plots that changed (`dvc plots diff {base}`)", "", "\n".join(images) or "No plot changed.", ""])
    write_text(out_dir / "report.md", text)
    return text
