"""`droplab repro`: `dvc repro`, timed, and where the time went: training and evaluation (each
run's own clock, metrics/speed/), the BN analysis, and the rest (process start-up, imports, data
loading, profiling, statistics, the report, DVC itself).

The times are written to bench/repro.md, not to any pipeline output: a time differs on every
run, and the files DVC tracks must diff cleanly.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from droplab.atomic import write_text

SPEED = Path("metrics/speed")
RECORD = Path("bench/repro.md")


@dataclass(frozen=True)
class Breakdown:
    wall: float
    runs: int  # runs that trained during this repro (the others were up to date or restored)
    training: float  # training and evaluation, summed over those runs
    analysis: float  # their BN analysis

    def lines(self) -> list[str]:
        rest = self.wall - self.training - self.analysis

        def share(seconds: float) -> str:
            return f"{_minutes(seconds)} ({seconds / self.wall:.0%})" if self.wall else _minutes(seconds)

        return [f"dvc repro: {_minutes(self.wall)} wall clock, {self.runs} runs trained",
                f"  training and evaluation: {share(self.training)}",
                f"  BN analysis:             {share(self.analysis)}",
                f"  everything else:         {share(rest)}"]


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def breakdown(wall: float, started: float, speed_dir: Path = SPEED) -> Breakdown:
    """The speed records written after `started` (this repro's runs), summed."""
    fresh = [json.loads(path.read_text()) for path in sorted(speed_dir.rglob("*.json"))
             if path.stat().st_mtime >= started]
    return Breakdown(wall, len(fresh), sum(record["seconds"] for record in fresh),
                     sum(record.get("analysis_seconds", 0.0) for record in fresh))


def repro(args: list[str], record: Path = RECORD) -> int:
    """`dvc repro <args>`, then the breakdown on stdout and, after a run that trained, in `record`."""
    started = time.time()
    clock = time.perf_counter()
    code = subprocess.run(["dvc", "repro", *args]).returncode
    result = breakdown(time.perf_counter() - clock, started)
    print("\n".join(result.lines()))
    if code == 0 and result.runs:
        write_text(record, "# The last `droplab repro` that trained\n\nWritten by `droplab repro` (`make repro`) on "
                   "the machine that ran it.\n\n```\n" + "\n".join(result.lines()) + "\n```\n")
    return code
