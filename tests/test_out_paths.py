"""Output paths checked when arguments are parsed (issue 26's `--out` that is a file): refused in
one line, before anything runs or is written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from droplab.__main__ import main as droplab_main

from conftest import REPO


@pytest.mark.parametrize("argv", [["review", "--out", "taken"], ["sweep", "--report-only", "--out", "taken"],
                                  ["try", "--keep", "taken"]])
def test_an_output_folder_that_is_a_file_is_refused(tmp_path: Path, monkeypatch, capsys, argv: list[str]):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("mine\n")
    with pytest.raises(SystemExit) as exit_:
        droplab_main(argv)
    assert exit_.value.code == 2
    assert f"argument {argv[-2]}: 'taken': exists and is not a folder" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["taken"] and (tmp_path / "taken").read_text() == "mine\n"


@pytest.mark.parametrize("out, said", [(".", "'.': is a folder; name the file to write"),
                                       ("absent/table.md", "its folder 'absent' does not exist")])
def test_bench_refuses_an_out_it_could_not_write_before_it_runs(tmp_path: Path, out: str, said: str):
    """Found only at the end, after the benchmarks' minutes, this was a traceback and no table."""
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", out], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])})
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []
