"""Running the `dvc` command line, for the commands that read experiments and diffs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from droplab.errors import DroplabError


def dvc(*args: str, cwd: Path | None = None) -> str:
    """stdout of `dvc <args>` (in `cwd`); a failure becomes a DroplabError carrying DVC's own output."""
    done = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise DroplabError(f"`dvc {' '.join(args)}` failed:\n{done.stdout}{done.stderr}")
    return done.stdout
