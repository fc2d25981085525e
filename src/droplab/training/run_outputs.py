"""What one seed's run leaves behind: the History its epochs accumulate, the RunResult record
built from it, its DVCLive log and its files (model, metrics, BN report, speed, confusion),
written all together or not at all, where run_files.RunFiles places them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from droplab import torch_files
from droplab.atomic import atomic_files, json_text
from droplab.config import Run, VariantConfig
from droplab.records import BnReport, EpochRow, PerClassScores, RunResult, Scores, dump
from droplab.run_files import RunFiles
from droplab.training import live
from droplab.training.device_data import Shard, Split

EpochLog = Callable[[dict[str, float]], None]  # called with each epoch's history row


@dataclass
class History:
    """Every epoch's row and the best epoch (highest val acc1, earliest on ties) with its metrics."""

    rows: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: dict[str, float] = field(default_factory=dict)
    best_train: dict[str, float] = field(default_factory=dict)


def run_result(history: History, test: dict[str, Any], splits: dict[str, Split], classes: list[str]) -> RunResult:
    """A seed's metrics/train record: its best epoch, the metrics there, test F1 per class by
    name, and every epoch's row (the curves the aggregate stage averages and judges regimes on)."""
    per_class = dict(zip(classes, test["f1_per_class"], strict=True))
    return RunResult(best_epoch=history.best_epoch, train=Scores(**history.best_train), val=Scores(**history.best_val),
                     test=PerClassScores(**{**test, "f1_per_class": per_class}),
                     sizes={name: len(split) for name, split in splits.items()},
                     history=[EpochRow(**row) for row in history.rows])


@contextmanager
def run_log(files: RunFiles, run: Run, shard: Shard) -> Iterator[EpochLog | None]:
    """Rank 0's DVCLive log of one run (training.live.run_log); the other ranks log nothing."""
    if shard.rank:
        yield None
        return
    with live.run_log(files.live(run)) as log:
        yield log.epoch


@dataclass(frozen=True)
class RunOutputs:
    """Everything a finished seed writes."""

    best_epoch: int
    best_state: dict[str, torch.Tensor]
    confusion: str  # confusion_file.confusion_rows of the test split
    result: RunResult
    bn: BnReport | None
    speed: dict[str, Any]


def write_outputs(files: RunFiles, config: VariantConfig, run: Run, outputs: RunOutputs) -> None:
    """All of a seed's files or none: a failure half way (a full disk) leaves the earlier ones
    untouched (its DVCLive folder, written while it trained, is put back by live.earlier_kept)."""
    model = {"variant": run.variant, "seed": run.seed, "spec": config.spec.model_dump(), "rates": config.rates,
             "best_epoch": outputs.best_epoch, "state_dict": outputs.best_state}
    with atomic_files() as stage:
        torch_files.save(model, stage(files.model(run)))
        stage(files.confusion(run)).write_text(outputs.confusion)
        stage(files.speed(run)).write_text(json_text(outputs.speed))
        stage(files.result(run)).write_text(dump(outputs.result))
        if outputs.bn is not None:
            stage(files.bn_report(run)).write_text(dump(outputs.bn))
