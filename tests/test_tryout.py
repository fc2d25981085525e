"""`droplab try`: the tiny pipeline in a throwaway copy that leaves the checkout untouched."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from droplab.errors import DroplabError
from droplab.pipeline import tryout
from droplab.pipeline.tiny import shrink

from conftest import REPO


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _files(root: Path) -> dict[str, str]:
    return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in _git(root, "ls-files").split()}


def test_the_copy_has_the_code_and_the_tiny_params_but_no_result(tmp_path: Path, real_params):
    repo = tmp_path / "repo"
    for rel, text in {"params.yaml": yaml.safe_dump(real_params), "src/a.py": "x = 1\n", "dvc.lock": "stale\n",
                      "metrics/summary.json": "{}\n", "report/summary.md": "old\n", "plots/claims.tsv": "c\n"}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "add", "-A")
    before = _files(repo)
    tryout.make_copy(repo, tmp_path / "copy")
    copied = sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*")
                    if p.is_file() and ".git" not in p.parts)
    assert copied == ["params.yaml", "src/a.py"]
    assert yaml.safe_load((tmp_path / "copy/params.yaml").read_text()) == shrink(real_params)
    assert _git(tmp_path / "copy", "status", "--porcelain") == ""  # committed in its own repository
    assert _files(repo) == before


def test_a_kept_folder_that_holds_files_is_refused(tmp_path: Path):
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine\n")
    with pytest.raises(DroplabError, match="the folder exists and is not empty"):
        tryout.run(REPO, tmp_path / "kept")
    assert (tmp_path / "kept" / "notes.txt").read_text() == "mine\n"


@pytest.mark.slow
def test_droplab_try_runs_the_pipeline_and_leaves_the_checkout_byte_identical(tmp_path: Path):
    checkout = tmp_path / "checkout"
    _git(tmp_path, "clone", "-q", str(REPO), str(checkout))
    before = _files(checkout)
    done = subprocess.run([sys.executable, "-m", "droplab", "try"], cwd=checkout, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Claims" in done.stdout and "s4-orders-alike" in done.stdout
    assert _git(checkout, "status", "--porcelain", "--ignored") == ""
    assert _files(checkout) == before
