"""The pull-request review: its claims table, read from report/stats.json as the aggregate stage
writes it, and its plots, DVC's own Vega-Lite specs rendered by vl-convert."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import vl_convert
from PIL import Image

from droplab.errors import DroplabError
from droplab.pipeline import review

from conftest import REPO


def test_the_review_tabulates_every_claim_with_its_verdict_and_numbers(tmp_path: Path, monkeypatch):
    claim = {"id": "s4-orders-alike", "study": "s4_d2l", "expect": "a ~ b", "observed": "0.8 ~ 0.8",
             "difference": "+0.001 [-0.002, +0.004]", "superiority": "0.6", "p_value": 0.0085, "p_holm": 0.042,
             "verdict": "confirmed"}
    untested = {**claim, "id": "s1-x", "observed": None, "difference": None, "superiority": None, "p_value": None,
                "p_holm": None, "verdict": "not testable at this scale: skipped"}
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"claims": [claim, untested]}))
    monkeypatch.setattr(review, "STATS", stats)
    rows = review._claims_table().splitlines()
    assert len(rows) == 4  # a header, its rule and one row per claim
    assert "s4-orders-alike" in rows[2] and "0.0085 (0.042)" in rows[2] and "confirmed" in rows[2]
    assert "not testable at this scale: skipped" in rows[3] and "0.0085" not in rows[3]


def test_without_stats_the_review_says_how_to_make_them(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(review, "STATS", tmp_path / "missing.json")
    assert "run `dvc repro`" in review._claims_table()


def _plots_diff(tmp_path: Path) -> dict:
    """`dvc plots diff HEAD --json` for one of droplab's interval plots whose s2_cnn point moved,
    in a fresh repository holding droplab's templates: the spec DVC itself fills."""
    repo = tmp_path / "repo"
    (repo / "plots").mkdir(parents=True)
    (repo / "dvc.yaml").write_text("plots:\n  - plots/test.tsv: {template: droplab_intervals, x: test_acc1, "
                                   "y: variant, title: test top-1}\n")
    rows = "variant\ttest_acc1\tlow\thigh\tseeds\ns2_cnn\t{}\t0.80\t0.82\t3\ns2_cnn_no_bn\t0.82\t0.80\t0.84\t3\n"
    (repo / "plots/test.tsv").write_text(rows.format("0.81"))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=repo, check=True, capture_output=True)
    shutil.copytree(REPO / ".dvc/plots", repo / ".dvc/plots")
    for command in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"]):
        subprocess.run(command, cwd=repo, check=True, capture_output=True)
    (repo / "plots/test.tsv").write_text(rows.format("0.83"))
    done = subprocess.run(["dvc", "plots", "diff", "HEAD", "--json"], cwd=repo, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout)["data"]["plots/test.tsv"][0]["content"]


def test_a_changed_plot_is_rendered_from_dvc_s_own_vega_lite_spec(tmp_path: Path):
    spec = _plots_diff(tmp_path)
    assert {row["rev"] for row in spec["data"]["values"]} == {"HEAD", "workspace"}
    assert review.render("plots/test.tsv", spec, tmp_path / "out/test.png")
    image = Image.open(tmp_path / "out/test.png")
    svg = vl_convert.vegalite_to_svg(vl_spec=spec)  # the same spec as vector: its size, independently
    width, height = (float(re.search(rf'{side}="([0-9.]+)"', svg)[1]) for side in ("width", "height"))
    assert image.format == "PNG" and image.size == (round(width * review.SCALE), round(height * review.SCALE))
    assert "test top-1" in svg and "revision" in svg  # the title, and the legend of the revisions' markers
    unchanged = {**spec, "data": {"values": [{**row, "test_acc1": "0.81"} for row in spec["data"]["values"]]}}
    review.render("plots/test.tsv", unchanged, tmp_path / "out/unchanged.png")
    assert (tmp_path / "out/unchanged.png").read_bytes() != (tmp_path / "out/test.png").read_bytes()


def test_a_plot_without_data_is_skipped_and_a_broken_spec_names_the_plot(tmp_path: Path):
    assert not review.render("plots/gone.tsv", {"data": {"values": []}}, tmp_path / "gone.png")
    assert not (tmp_path / "gone.png").exists()
    with pytest.raises(DroplabError, match="plots/bad.tsv: vl-convert cannot render the Vega-Lite spec DVC made"):
        review.render("plots/bad.tsv", {"mark": "nonsense", "data": {"values": [{"a": 1}]}}, tmp_path / "bad.png")


def test_rendering_never_fetches_data_from_the_network(tmp_path: Path):
    """Inline data only: a spec pointing at a URL is refused, not downloaded."""
    spec = {"data": {"values": [{"a": 1}]}, "layer": [
        {"mark": "point", "encoding": {"x": {"field": "a", "type": "quantitative"}}},
        {"mark": "rule", "data": {"url": "https://example.com/x.csv"}, "encoding": {"x": {"field": "a"}}}]}
    with pytest.raises(DroplabError, match="not allowed"):
        review.render("plots/remote.tsv", spec, tmp_path / "remote.png")


@pytest.mark.parametrize("text", ["{not json", '{"no": "claims"}', '{"claims": [1]}', "caf\xe9"])
def test_unreadable_stats_are_named_in_one_line(tmp_path: Path, monkeypatch, text: str):
    stats = tmp_path / "stats.json"
    stats.write_bytes(text.encode("latin-1"))
    monkeypatch.setattr(review, "STATS", stats)
    with pytest.raises(DroplabError, match=rf"^{stats}: not the aggregate stage's statistics .*rerun"):
        review._claims_table()


def test_a_failed_dvc_command_is_one_line_with_dvc_s_error(tmp_path: Path):
    """DVC's real output outside a Git and DVC repository: its ERROR line, without the rest."""
    from droplab.pipeline.dvc_command import dvc

    with pytest.raises(DroplabError) as failed:
        dvc("metrics", "diff", "main", "--md", cwd=tmp_path)
    message = str(failed.value)
    assert "\n" not in message and message.startswith("`dvc metrics diff main --md` failed (exit ")
    assert message.count("ERROR: ") == 1 and "Traceback" not in message
