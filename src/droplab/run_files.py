"""The names inside a run's DVCLive folder (plots/train/<variant>/seed<k>/), in one torch-free
place: training writes them, the report reads them, and `droplab runs` points dvc.yaml's plots
at them."""

from __future__ import annotations

from pathlib import Path

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
