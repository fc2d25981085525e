"""`droplab try`: the whole pipeline on the tiny config of one study (or of the variants named), in a
throwaway copy of the repository.

The copy holds the repository's tracked files without any result, its own git repository and
DVC cache, and the tiny params of one study (each variant is a DVC stage with its own process,
so all of them take several times longer); `dvc repro` runs there, every stage from download
to report. The checkout it was started from is
never written to, so a newcomer can try droplab without touching params.yaml or a committed
result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from droplab.atomic import write_text
from droplab.errors import DroplabError
from droplab.pipeline.tiny import checked_params, shrink_checked
from droplab.yaml_file import with_comments

# S2's CNNs: six small models that learn within the tiny config's single epoch (S4's SGD MLPs and
# the ResNets stay near chance there), with claims to judge
DEFAULT_STUDY = "s2_cnn"
RESULTS = {"metrics", "plots", "report", "models", "checkpoints", "dvc.lock"}  # what the copy computes itself


def git_files(repo: Path) -> list[str]:
    """The repository's files as git sees them: tracked, and untracked but not ignored."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=repo, capture_output=True,
                            text=True)
    if listed.returncode != 0:
        raise DroplabError(f"{repo}: not a git checkout ({listed.stderr.strip()}); run droplab try in a clone")
    return listed.stdout.split()


def tracked_files(repo: Path) -> list[str]:
    """`git_files` without results."""
    return [rel for rel in git_files(repo) if rel.split("/")[0] not in RESULTS and (repo / rel).is_file()]


def tiny_params(repo: Path, chosen: str | Sequence[str] | None) -> dict:
    """The repository's params.yaml, checked and shrunk to the tiny config with the `chosen` variants: a
    study's name (its variants), the variants named (--variants), or None (all). Any problem stops here,
    before a folder is made."""
    path = repo / "params.yaml"
    raw, params = checked_params(path)
    if chosen is None or not isinstance(chosen, str):
        return shrink_checked(raw, path, chosen, "--variants")[0]
    if chosen not in params.studies:
        raise DroplabError(f"--study {chosen!r}: not a study of params.yaml; expected one of "
                           f"{', '.join(params.studies)} or all")
    return shrink_checked(raw, path, params.studies[chosen].variants, "--study", allow_skipped=True)[0]


def make_copy(repo: Path, target: Path, params: dict) -> None:
    """The tracked files of `repo` in `target`, with the tiny `params` and a git repository of their own."""
    for rel in tracked_files(repo):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, target / rel)
    # ruamel's round trip, as `droplab tiny`: the copy's params.yaml keeps the comments that explain it
    write_text(target / "params.yaml", with_comments((repo / "params.yaml").read_text(), params))
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=droplab", "-c", "user.email=try@droplab.invalid", "commit", "-qm",
                     "droplab try"]):
        subprocess.run(command, cwd=target, check=True, capture_output=True)


def run(repo: Path, keep: Path | None, chosen: str | Sequence[str] | None = DEFAULT_STUDY) -> Path | None:
    """Copy, write the runs, `dvc repro` in the copy, print its claims; return the kept copy. `chosen`
    is what `tiny_params` takes."""
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise DroplabError(f"--keep {keep}: the folder exists and is not empty; name a new one")
    params = tiny_params(repo, chosen)
    target = keep or Path(tempfile.mkdtemp(prefix="droplab-try-"))
    target.mkdir(parents=True, exist_ok=True)
    try:
        make_copy(repo, target, params)
        # the stages' `python` must be this interpreter (the venv's) even when the venv is not activated
        env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        for command in ([sys.executable, "-m", "droplab", "runs"], [sys.executable, "-m", "dvc", "repro"]):
            if subprocess.run(command, cwd=target, env=env).returncode != 0:
                raise DroplabError(f"`{' '.join(command[-2:])}` failed in the copy {target}; it is kept for a look")
        summary = (target / "report" / "summary.md").read_text()
        print("## " + summary.split("\n## ")[1])  # the claims section: the verdicts, on the tiny data
        print(f"The whole report: {target / 'report' / 'summary.md'}" if keep else
              "Rerun with --keep DIR to look at the copy's report, plots and `dvc plots show`.")
    except DroplabError:
        keep = target  # a failed try is kept: its logs and files say why
        raise
    finally:
        if keep is None:
            shutil.rmtree(target, ignore_errors=True)
    return keep
