"""The pull-request review's claims table, read from report/stats.json as the aggregate stage writes it."""

import json
from pathlib import Path

from droplab.pipeline import review


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
