"""Where a run's files live, in one torch-free place: training writes them, the BN analysis, the
aggregate and the report read them, and `droplab runs` points dvc.yaml's plots at them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# history row key -> DVCLive metric name (DVCLive keeps its history in plots/metrics/<name>.tsv)
LOGGED = {"train_loss": "train/loss", "train_acc1": "train/acc1", "train_acc5": "train/acc5",
          "val_loss": "val/loss", "val_acc1": "val/acc1", "val_acc5": "val/acc5", "lr": "lr"}
CURVES = {"loss": "cross-entropy loss", "acc1": "top-1 accuracy"}  # the curves plotted: metric -> axis label
CONFUSION = "test_confusion.tsv"  # rows of (actual, predicted): DVC's `confusion` template counts them


def metric_file(directory: Path, name: str) -> Path:
    """Where DVCLive keeps the history of metric `name` of the run logged in `directory`."""
    return directory / "plots" / "metrics" / f"{name}.tsv"


def field(name: str) -> str:
    """The column DVCLive names a metric's values by in its history file: the last part of its name."""
    return name.rsplit("/", 1)[-1]


class _Run(Protocol):
    def path(self, folder: Path, suffix: str) -> Path: ...


@dataclass(frozen=True)
class RunFiles:
    """A run's files under the stages' output folders: models/, metrics/{train,bn,speed}/,
    plots/train/ (its DVCLive folder) and checkpoints/ (not a DVC output, so it survives a rerun).
    Each is <folder>/<variant>/[p<rate>/]seed<k><suffix>, as `Run.path` places it."""

    models: Path = Path("models")
    metrics: Path = Path("metrics")
    plots: Path = Path("plots")
    checkpoints: Path = Path("checkpoints")

    def model(self, run: _Run) -> Path:
        return run.path(self.models, ".pt")

    def result(self, run: _Run) -> Path:
        return run.path(self.metrics / "train", ".json")

    def bn_report(self, run: _Run) -> Path:
        return run.path(self.metrics / "bn", ".json")

    def speed(self, run: _Run) -> Path:
        return run.path(self.metrics / "speed", ".json")

    def live(self, run: _Run) -> Path:
        return run.path(self.plots / "train", "")

    def confusion(self, run: _Run) -> Path:
        return self.live(run) / CONFUSION

    def checkpoint(self, run: _Run) -> Path:
        return run.path(self.checkpoints, ".pt")
