"""Every committed result file is one the pipeline writes: a rename can never leave orphans behind."""

import subprocess
from pathlib import PurePosixPath

from dvc.repo import Repo

from conftest import REPO

RESULT_FOLDERS = ("metrics", "plots", "report")


def declared_outputs() -> list[PurePosixPath]:
    """Every output path of every stage of dvc.yaml, interpolated as DVC reads it."""
    with Repo(str(REPO)) as repo:
        return [PurePosixPath(out.def_path) for stage in repo.index.stages for out in stage.outs]


def test_every_committed_result_file_is_a_declared_output():
    committed = subprocess.run(["git", "ls-files", *RESULT_FOLDERS], cwd=REPO, capture_output=True, text=True,
                               check=True).stdout.split()
    assert committed, "no committed results: the default run's metrics, plots and report belong in git"
    outputs = declared_outputs()
    orphans = [path for path in map(PurePosixPath, committed)  # DVC's .gitignore beside its cached outputs
               if path.name != ".gitignore" and not any(path == out or out in path.parents for out in outputs)]
    assert not orphans, f"committed but written by no stage of dvc.yaml: {orphans[:10]}"


def test_the_check_catches_an_orphan():
    outputs = declared_outputs()
    stale = PurePosixPath("metrics/train/s2_mlp.json")  # the old per-variant layout
    assert not any(stale == out or out in stale.parents for out in outputs)
    assert any(PurePosixPath("metrics/train/s2_mlp/seed0.json").is_relative_to(out) for out in outputs)
