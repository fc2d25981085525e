"""`droplab review`: the markdown a pull request gets (posted by CML in .github/workflows/review.yml).

Metrics and params against a base revision come from DVC itself (`dvc metrics diff --md`,
`dvc params diff --md`); each plot of `dvc plots diff` is the Vega-Lite spec DVC fills from its
template with both revisions' data, rendered to PNG by vl-convert (Vega bundled, no browser, no
network), because a PR comment cannot run Vega: the image is the plot `dvc plots diff` shows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import vl_convert

from droplab.atomic import atomic_open, write_text
from droplab.errors import DroplabError
from droplab.pipeline.dvc_command import dvc
from droplab.results.report import CLAIM_COLUMNS, claim_row

STATS = Path("report/stats.json")
SCALE = 1.5  # pixels per Vega-Lite pixel: the templates' 420-pixel panels stay legible in a comment


def render(plot_id: str, spec: dict, path: Path) -> bool:
    """One `dvc plots diff` plot, DVC's filled Vega-Lite spec, as a PNG at `path`; False if the
    plot has no data (it exists in neither revision)."""
    if not spec.get("data", {}).get("values"):
        return False
    try:
        png = vl_convert.vegalite_to_png(vl_spec=spec, scale=SCALE, allowed_base_urls=[])  # inline data only
    except ValueError as exc:
        raise DroplabError(f"{plot_id}: vl-convert cannot render the Vega-Lite spec DVC made for it: {exc}") from None
    with atomic_open(path, "wb") as handle:
        handle.write(png)
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
    try:
        claims = json.loads(STATS.read_text(encoding="utf-8"))["claims"]
        rows = [claim_row(claim) for claim in claims]
    except (ValueError, KeyError, TypeError) as exc:  # ValueError: not JSON or not UTF-8
        raise DroplabError(f"{STATS}: not the aggregate stage's statistics ({type(exc).__name__}: {exc}); rerun "
                           "`dvc repro aggregate` to rewrite it") from None
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS).to_markdown(index=False)


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
