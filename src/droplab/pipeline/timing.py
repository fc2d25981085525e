"""`droplab repro`: `dvc repro`, timed, and where the time went: training and evaluation (each
run's own clock, metrics/speed/), the BN analysis, and the rest (process start-up, imports, data
loading, profiling, statistics, the report, DVC itself).

The times are written to bench/repro.md, not to any pipeline output: a time differs on every
run, and the files DVC tracks must diff cleanly.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from droplab import records
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


class Speed(BaseModel):
    """The fields of a metrics/speed/ record the breakdown sums (the train stage writes more)."""

    seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    analysis_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0


def breakdown(wall: float, started: float, speed_dir: Path = SPEED) -> Breakdown:
    """The speed records written after `started` (this repro's runs), summed; a corrupt one is
    named in one line, as every record droplab reads."""
    fresh = [records.load(path, Speed, records.RERUN_TRAIN) for path in sorted(speed_dir.rglob("*.json"))
             if path.stat().st_mtime >= started]
    return Breakdown(wall, len(fresh), sum(record.seconds for record in fresh),
                     sum(record.analysis_seconds for record in fresh))


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
