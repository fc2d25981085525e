"""Pipeline overhead: how long DVC takes to find there is nothing to do, in the repository root.

`dvc repro` is timed only when the pipeline is up to date: otherwise it would train, not idle.
"""

from __future__ import annotations

from pathlib import Path

from bench.timing import median_seconds
from droplab.errors import DroplabError
from droplab.pipeline.dvc_command import dvc as run_dvc

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 3.0
UP_TO_DATE = "up to date"
SKIPPED = "dvc status, no-op dvc repro"


def dvc(*args: str) -> str:
    return run_dvc(*args, cwd=ROOT)


def _row(case: str, measured: str, note: str) -> dict[str, str]:
    return {"benchmark": "pipeline", "case": case, "measured": measured, "baseline": f"target < {TARGET_SECONDS:g} s",
            "ratio": "", "note": note}


def _stale_stages(status: str) -> list[str]:
    """Stage names in `dvc status` output: the unindented lines ending in ':'."""
    return [line[:-1] for line in status.splitlines() if line.endswith(":") and not line[:1].isspace()]


def run(quick: bool) -> list[dict[str, str]]:
    """Time `dvc status` (read-only) always; a no-op `dvc repro` only when the status is clean."""
    lock = ROOT / "dvc.lock"
    if not lock.exists():
        return [_row(SKIPPED, "skipped", "dvc.lock is missing: run `dvc repro` first")]
    repeats = 1 if quick else 3
    try:
        status = dvc("status")
        seconds = median_seconds({"status": lambda: dvc("status")}, repeats)
        if UP_TO_DATE not in status:
            note = f"not clean (stale: {', '.join(_stale_stages(status))}), so no-op `dvc repro` skipped"
            return [_row("`dvc status`", f"{seconds['status']:.2f} s", note)]
        before = lock.read_bytes()
        seconds |= median_seconds({"repro": lambda: dvc("repro")}, repeats)
    except DroplabError as exc:  # e.g. another dvc holds the repository lock
        return [_row(SKIPPED, "skipped", f"dvc failed: {str(exc).strip().splitlines()[-1:]}")]
    note = "clean; dvc.lock unchanged" if lock.read_bytes() == before else "dvc.lock CHANGED: repro was not a no-op"
    return [_row("`dvc status`", f"{seconds['status']:.2f} s", "clean"),
            _row("`dvc repro` (no-op)", f"{seconds['repro']:.2f} s", note)]
