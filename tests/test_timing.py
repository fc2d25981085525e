"""`droplab repro`: dvc repro timed, and the time split between training, the BN analysis and the rest."""

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from droplab.errors import DroplabError
from droplab.pipeline import timing


def _speed(folder: Path, name: str, seconds: float, analysis: float) -> Path:
    path = folder / "metrics/speed" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": seconds, "analysis_seconds": analysis}))
    return path


def test_breakdown_counts_only_the_runs_this_repro_wrote(tmp_path: Path):
    old = _speed(tmp_path, "a/seed0.json", 100.0, 5.0)
    os.utime(old, (1000.0, 1000.0))  # written long before: restored or up to date, not trained now
    _speed(tmp_path, "a/seed1.json", 30.0, 2.0)
    _speed(tmp_path, "b/p10/seed0.json", 10.0, 1.0)
    result = timing.breakdown(60.0, time.time() - 5, tmp_path / "metrics/speed")
    assert (result.runs, result.training, result.analysis) == (2, 40.0, 3.0)
    lines = result.lines()
    assert lines[0] == "dvc repro: 1 min 00.0 s wall clock, 2 runs trained"
    assert lines[1].endswith("0 min 40.0 s (67%)") and lines[3].endswith("0 min 17.0 s (28%)")


def test_repro_runs_dvc_and_records_the_time_of_a_run_that_trained(tmp_path: Path, monkeypatch, capsys):
    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport json, pathlib, sys\n"
                    "assert sys.argv[1:] == ['repro', '--pull'], sys.argv\n"
                    "path = pathlib.Path('metrics/speed/v/seed0.json')\npath.parent.mkdir(parents=True)\n"
                    "path.write_text(json.dumps({'seconds': 0.5, 'analysis_seconds': 0.1}))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    assert timing.repro(["--pull"], tmp_path / "bench/repro.md") == 0
    out = capsys.readouterr().out
    assert "1 runs trained" in out and "training and evaluation: 0 min 00.5 s" in out
    assert out.strip() in (tmp_path / "bench/repro.md").read_text()


@pytest.mark.parametrize("code", [0, 3])
def test_nothing_is_recorded_when_nothing_trained_or_dvc_failed(tmp_path: Path, monkeypatch, code: int):
    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.exit({code})\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    assert timing.repro([], tmp_path / "bench/repro.md") == code
    assert not (tmp_path / "bench/repro.md").exists()


@pytest.mark.parametrize("text, said", [("{not json", "not valid JSON"),
                                        ('{"seconds": -1}', "seconds: Input should be"),
                                        ('{"analysis_seconds": 1}', "seconds: required key is missing")])
def test_a_corrupt_speed_record_is_named_in_one_line(tmp_path: Path, text: str, said: str):
    """Issue 26's weak kind: a corrupt per-seed JSON stops with one line naming it, not a traceback."""
    path = tmp_path / "metrics/speed/a/seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(DroplabError, match=rf"^{path}: {said}.*rerun its train stage"):
        timing.breakdown(60.0, time.time() - 5, tmp_path / "metrics/speed")
