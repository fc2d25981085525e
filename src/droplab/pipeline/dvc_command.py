"""Running the `dvc` command line, for the commands that read experiments and diffs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from droplab.errors import DroplabError


def dvc(*args: str, cwd: Path | None = None) -> str:
    """stdout of `dvc <args>` (in `cwd`); a failure becomes a one-line DroplabError carrying DVC's
    own ERROR lines (or its last line): droplab's errors are one line, and DVC's output around them
    (progress, hints) says nothing about what went wrong."""
    done = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        said = [line for line in lines if line.startswith("ERROR")] or lines[-1:] or ["no output"]
        raise DroplabError(f"`dvc {' '.join(args)}` failed (exit {done.returncode}): {' '.join(said)}")
    return done.stdout
