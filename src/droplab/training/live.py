"""A run's training log through DVCLive, written epoch by epoch on rank 0, so the VS Code DVC
extension, DVC Studio and dvc.yaml's per-study overlays see a run while it trains.

Each run logs into its own folder, plots/train/<variant>/seed<k>/, in DVCLive's layout:
`metrics.json` (the latest epoch's values and its step) and `plots/metrics/<name>.tsv` (one row
per epoch). The step is the epoch number (1-based), values are rounded and no timestamp is
logged, so `dvc repro --force` rewrites the same bytes. droplab keeps its own dvc.yaml
(DVCLive's `dvcyaml=None`) and saves no experiment of its own (`save_dvc_exp=False`: `dvc exp
run` does). Only DVCLive's public constructor arguments are used, so an upgrade cannot silently
change what they mean.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from dvclive import Live

from droplab.run_files import CONFUSION, LOGGED, field, metric_file

__all__ = ["CONFUSION", "RunLog", "earlier_kept", "read_curves", "run_log"]


class RunLog:
    """One run's DVCLive logger: `epoch(row)` logs one history row at step row["epoch"]."""

    def __init__(self, live: Live):
        self.live = live

    def epoch(self, row: dict[str, float]) -> None:
        self.live.step = int(row["epoch"])
        for key, name in LOGGED.items():
            value = float(row[key])
            # six decimals, as every droplab metric file; the lr by significant digits, as it can be tiny
            self.live.log_metric(name, float(f"{value:.6g}") if key == "lr" else round(value, 6))
        self.live.next_step()  # writes metrics.json and signals the finished step to `dvc exp run`


@contextmanager
def run_log(directory: Path) -> Iterator[RunLog]:
    """DVCLive logging into `directory` (emptied first) while the run trains."""
    with Live(str(directory), resume=False, report=None, save_dvc_exp=False, dvcyaml=None,
              monitor_system=False) as live:
        live.step = 0
        yield RunLog(live)


@contextmanager
def earlier_kept(directory: Path) -> Iterator[None]:
    """An earlier run's files in `directory` are moved aside while a new run writes there, put
    back if it fails, and deleted once it has written all its outputs. A copy aside already
    (a killed run left it) is the good one: the partial folder beside it goes."""
    aside = directory.with_name(directory.name + ".earlier")
    if aside.exists():
        shutil.rmtree(directory, ignore_errors=True)
    elif directory.exists():
        directory.rename(aside)
    try:
        yield
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


