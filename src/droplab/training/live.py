"""A run's training log through DVCLive, written epoch by epoch on rank 0, so the VS Code DVC
extension, DVC Studio and dvc.yaml's per-study overlays see a run while it trains.

Each run logs into its own folder, plots/train/<variant>/seed<k>/, in DVCLive's layout:
`metrics.json` (the latest epoch's values and its step) and `plots/metrics/<name>.tsv` (one row
per epoch). The step is the epoch number (1-based), values are rounded to 6 decimals and no
timestamp is logged, so `dvc repro --force` rewrites the same bytes. droplab keeps its own
dvc.yaml (DVCLive's `dvcyaml` is off) and saves no experiment of its own (`dvc exp run` does).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from dvclive import Live

from droplab.run_files import CONFUSION, LOGGED, field, metric_file

__all__ = ["CONFUSION", "RunLog", "confusion_rows", "read_confusion", "read_curves", "run_log"]


class RunLog:
    """One run's DVCLive logger: `epoch(row)` logs one history row at step row["epoch"]."""

    def __init__(self, live: Live):
        self.live = live

    def epoch(self, row: dict[str, float]) -> None:
        self.live.step = int(row["epoch"])
        for key, name in LOGGED.items():
            self.live.log_metric(name, round(float(row[key]), 6))
        self.live.next_step()  # writes metrics.json and tells `dvc exp run` a step is done


@contextmanager
def run_log(directory: Path) -> Iterator[RunLog]:
    """DVCLive logging into `directory` while the run trains. An earlier run's files there are
    moved aside first and put back if this run fails, so a failed run never costs the last
    good curves; they are deleted once it succeeds."""
    aside = directory.with_name(directory.name + ".earlier")
    shutil.rmtree(aside, ignore_errors=True)
    if directory.exists():
        directory.rename(aside)
    try:
        with Live(str(directory), resume=False, report=None, save_dvc_exp=False, dvcyaml=None,
                  monitor_system=False) as live:
            live.step = 0
            yield RunLog(live)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        if aside.exists():
            aside.rename(directory)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def read_curves(directory: Path) -> pd.DataFrame:
    """The run's logged history as one table: an `epoch` column, then one per history key."""
    columns = {}
    for key, name in LOGGED.items():
        logged = pd.read_csv(metric_file(directory, name), sep="\t")
        columns[key] = logged.set_index("step")[field(name)]
    return pd.DataFrame(columns).rename_axis("epoch").reset_index()


def confusion_rows(confusion: np.ndarray, classes: list[str]) -> str:
    """The test confusion matrix (true x predicted counts) as the per-image rows DVC's
    `confusion` template counts, sorted so that equal rows sit together and diff compactly."""
    lines = ["actual\tpredicted"]
    for actual, row in enumerate(confusion):
        for predicted, count in enumerate(row):
            lines += [f"{classes[actual]}\t{classes[predicted]}"] * int(count)
    return "\n".join(lines) + "\n"


def read_confusion(path: Path, classes: list[str]) -> np.ndarray:
    """A confusion rows file back as counts (true x predicted)."""
    rows = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    index = {name: position for position, name in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, (rows["actual"].map(index).to_numpy(), rows["predicted"].map(index).to_numpy()), 1)
    return counts
