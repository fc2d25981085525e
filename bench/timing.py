"""Wall-clock times taken in interleaved rounds, so a slow spell of a noisy machine hits every contender alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def round_robin(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each callable in each of `repeats` rounds; a round runs every callable once."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def median_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    return {name: statistics.median(seconds) for name, seconds in round_robin(runs, repeats).items()}
