"""Train one variant under each of its seeds: flat `train_one_epoch` and `evaluate`, one `main`.

All seeds of a variant share one process (the data is loaded and torch imported once), and
each seed still writes its own files. Rank 0 logs every epoch through DVCLive
(`training.live`) as it trains. Validation runs every epoch; the weights of the best
validation epoch (highest val acc1, earliest on ties) are kept, the test split is evaluated
once with those weights, and the BN analysis (`analyze.analyze_run`) measures them. Under
torchrun every process trains its shard of each batch (DDP averages the gradients) and
evaluates its share of each split (the counts are summed), and rank 0 alone reads and writes.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from droplab import confusion_file, kernel_pins
from droplab.config import Run, TrainConfig, VariantConfig
from droplab.errors import DroplabError
from droplab.models.norm import convert_sync_batchnorm
from droplab.models.registry import create_model_for
from droplab.records import BnReport, Meta, RunResult, load_meta
from droplab.run_files import RunFiles
from droplab.training import checkpoint, distributed, live
from droplab.training.context import Context, autocast, make_context
from droplab.training.determinism import seed_everything
from droplab.training.device_data import (
    ONE_PROCESS,
    CropFlip,
    Shard,
    Split,
    draw_crop_flip,
    eval_batches,
    load_splits,
    subsets,
    train_batches,
)
from droplab.training.metrics import Meter
from droplab.training.optim import build_optimizer, build_scheduler
from droplab.training.resume import Resume, resume_state, run_identity
from droplab.training.run_outputs import EpochLog, History, RunOutputs, run_log, run_result, write_outputs


class NonFiniteLoss(Exception):
    def __init__(self, step: int, value: float):
        super().__init__(step, value)
        self.step, self.value = step, value


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
               images: torch.Tensor, labels: torch.Tensor, draws: CropFlip | None,
               ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on one batch; returns the logits and the summed loss. It only queues
    device work: nothing in it creates a host tensor or makes the host wait for the device."""
    x = ctx.transform(images, draws)
    with autocast(ctx):
        logits = model(x)
        loss_sum = F.cross_entropy(logits.float(), labels, reduction="sum")
    optimizer.zero_grad(set_to_none=True)
    (loss_sum / len(labels)).backward()
    optimizer.step()
    scheduler.step()
    return logits, loss_sum


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                    split: Split, cfg: TrainConfig, ctx: Context, generator: torch.Generator,
                    progress: tqdm | None) -> dict[str, float]:
    """One pass over the train split. The batch order and the augmentation are drawn for the
    whole epoch up front and the metrics read back once at the end, so the host queues every
    step without waiting for the device."""
    model.train()
    meter = Meter(ctx.num_classes, ctx.device)
    steps = len(split) // cfg.batch_size
    draws = draw_crop_flip(steps, cfg.batch_size, cfg.augment.crop_pad, cfg.augment.flip, generator, ctx.device,
                           ctx.shard)
    batches = train_batches(split, cfg.batch_size, generator, ctx.shard)
    for (images, labels), step_draws in zip(batches, draws, strict=True):
        logits, loss_sum = train_step(model, optimizer, scheduler, images, labels, step_draws, ctx)
        meter.update(logits, labels, loss_sum)
        if progress is not None:
            progress.update(1)
    # every rank stops together, at the earliest bad step of any, before the collective in summary()
    bad = [found for found in distributed.all_gather_object(meter.first_nonfinite_loss(), ctx.shard) if found]
    if bad:
        raise NonFiniteLoss(*min(bad))
    return meter.summary(distributed.sum_across(ctx.shard))


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int, ctx: Context,
             shard: Shard = ONE_PROCESS, per_class: bool = False) -> dict[str, Any]:
    """Metrics of `split` (with `per_class`, each class's F1 and the confusion matrix too). With
    a `shard` of several processes each evaluates its contiguous share and the counts are
    summed: one pass's work in all, and one process's metrics (the loss to float rounding)."""
    model.eval()
    part = shard.part(len(split))
    meter = Meter(ctx.num_classes, ctx.device)
    for images, labels in eval_batches(Split(split.images[part], split.labels[part]), batch_size):
        with autocast(ctx):
            logits = model(ctx.transform(images))
        meter.update(logits, labels, F.cross_entropy(logits.float(), labels, reduction="sum"))
    return meter.summary(distributed.sum_across(shard), per_class)


# A checkpoint after the last epoch, and before it at most once per this many seconds of the run: a
# kill loses at most that much training, and a small model's run is not spent writing checkpoints
# (one every epoch more than doubled the time of S2's MLP runs). 0 checkpoints every epoch.
CHECKPOINT_SECONDS = float(os.environ.get("DROPLAB_CHECKPOINT_SECONDS", "60"))
checkpoint_clock = time.monotonic


def fit(model: nn.Module, splits: dict[str, Split], cfg: TrainConfig, ctx: Context, generator: torch.Generator,
        name: str, resume: Resume | None = None, lr_keys: str = "train.lr",
        log: EpochLog | None = None) -> tuple[History, dict[str, torch.Tensor], float]:
    """Train for cfg.epochs, checkpointing to `resume` (after the last epoch, and at most every
    CHECKPOINT_SECONDS before it) and starting after its last epoch when it has one; return the
    history, the best epoch's weights (on the CPU) and the training seconds. `lr_keys` names where
    the lr is set, for the message when the loss diverges. `log` gets every epoch's row; after a
    resume, first the rows of the epochs already done, so the log's steps continue where the
    checkpoint left off."""
    steps = len(splits["train"]) // cfg.batch_size
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps)
    history = History()
    best_state: dict[str, torch.Tensor] = {}
    main_process = ctx.shard.rank == 0
    on_terminal = sys.stderr.isatty() and main_process
    train_seconds = 0.0
    first_epoch = 1
    saved = resume_state(resume, ctx.shard)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        history, best_state, train_seconds = History(**saved["history"]), saved["best_state"], saved["train_seconds"]
        checkpoint.restore_rng_states(saved["rng"][ctx.shard.rank], generator, ctx.device)
        first_epoch = saved["epoch"] + 1
        if main_process:
            print(f"{name}: resuming after epoch {saved['epoch']} from {resume.path}", flush=True)
    for row in history.rows if log else ():
        log(row)
    trainable = distributed.for_training(model, ctx.shard, ctx.device, cfg.compile)
    last_saved = checkpoint_clock()
    for epoch in range(first_epoch, cfg.epochs + 1):
        progress = tqdm(total=steps, desc=f"{name} {epoch}/{cfg.epochs}", leave=False) if on_terminal else None
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]  # the lr of the epoch's first step
        try:
            train = train_one_epoch(trainable, optimizer, scheduler, splits["train"], cfg, ctx, generator, progress)
        except NonFiniteLoss as bad:
            raise DroplabError(
                f"{name}: the training loss became {bad.value} at epoch {epoch}, step {bad.step} of {steps}. "
                f"Try a lower learning rate ({lr_keys}, now {cfg.lr:g}). "
                + (f"The checkpoint of epoch {epoch - 1} is kept in {resume.path}" if resume and epoch > 1
                   else "Nothing was written")) from None
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()  # the loop never waits for the GPU; the clock must
        train_seconds += time.perf_counter() - start
        distributed.share_buffers(model, ctx.shard)
        val = evaluate(model, splits["val"], cfg.eval_batch_size, ctx, ctx.shard)
        if progress is not None:
            progress.close()
        history.rows.append({"epoch": epoch, "train_loss": train["loss"], "train_acc1": train["acc1"],
                             "train_acc5": train["acc5"], "val_loss": val["loss"], "val_acc1": val["acc1"],
                             "val_acc5": val["acc5"], "lr": lr})
        if log:
            log(history.rows[-1])
        if main_process:
            print(f"{name} epoch {epoch}/{cfg.epochs}: train loss {train['loss']:.4f} acc1 {train['acc1']:.4f} | "
                  f"val loss {val['loss']:.4f} acc1 {val['acc1']:.4f}", flush=True)
        if not history.best_val or val["acc1"] > history.best_val["acc1"]:
            history.best_epoch, history.best_val, history.best_train = epoch, val, train
            best_state = checkpoint.host_copy(model)
        due = epoch == cfg.epochs or checkpoint_clock() - last_saved >= CHECKPOINT_SECONDS
        if resume and distributed.broadcast_object(due, ctx.shard):  # every rank takes rank 0's decision
            last_saved = checkpoint_clock()
            rng = distributed.gather_object(checkpoint.rng_states(generator, ctx.device), ctx.shard)
            if main_process:
                checkpoint.save(resume.path, resume.identity, {
                    "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "history": asdict(history), "best_state": best_state,
                    "train_seconds": train_seconds, "rng": rng})
    return history, best_state, train_seconds


@dataclass(frozen=True)
class TrainedRun:
    """What one seed's training gives back: the model with the best epoch's weights loaded, its
    history, those weights (on the CPU), the test metrics (per class and the confusion matrix
    too) and the speed record."""

    model: nn.Module
    history: History
    best_state: dict[str, torch.Tensor]
    test: dict[str, Any]
    speed: dict[str, Any]


def train_run(config: VariantConfig, run: Run, splits: dict[str, Split], meta: Meta, ctx: Context,
              resume: Resume | None, log: EpochLog | None = None) -> TrainedRun:
    """One seed: train, reload the best epoch's weights, evaluate the test split."""
    cfg = config.train
    generator = seed_everything(run.seed, cfg.threads, cfg.compile)
    model = create_model_for(config.spec, config.rates, meta).to(ctx.device)
    if ctx.transform.memory_format == torch.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # SyncBatchNorm trains; the returned model keeps plain BN, which rank 0 saves and analyses alone
    trained = convert_sync_batchnorm(copy.deepcopy(model)) if cfg.sync_bn else model
    if ctx.shard.rank:  # DDP copies rank 0's weights; the other ranks draw their own dropout masks
        torch.manual_seed(run.seed + 1000 * ctx.shard.rank)
    start = time.perf_counter()
    history, best_state, train_seconds = fit(trained, splits, cfg, ctx, generator, f"{run.variant} seed {run.seed}",
                                             resume, config.lr_keys, log)
    model.load_state_dict(best_state)
    test = evaluate(model, splits["test"], cfg.eval_batch_size, ctx, ctx.shard, per_class=True)
    images = cfg.epochs * (len(splits["train"]) // cfg.batch_size) * cfg.batch_size
    speed = {"seconds": round(time.perf_counter() - start, 3), "images_per_sec": round(images / train_seconds, 1),
             "device": str(ctx.device), "processes": ctx.shard.world,
             "platform": kernel_pins.fingerprint(ctx.device.type)}
    return TrainedRun(model, history, best_state, test, speed)


# (model, splits, ctx, seed, the test metrics training measured) -> the seed's BN report
Measure = Callable[[nn.Module, dict[str, Split], Context, int, dict[str, Any]], BnReport]


def main(config: VariantConfig, seeds: list[int], prepared: Path, models_dir: Path, metrics_dir: Path,
         plots_dir: Path, checkpoints_dir: Path | None = None, measure: Measure | None = None) -> dict[int, RunResult]:
    """Train the variant under each seed, then write each seed's model, metrics, speed and curves
    (rank 0), and with `measure` (the BN analysis, which lives above training) its
    metrics/bn/<variant>/seed<k>.json.

    With `checkpoints_dir`, every epoch is checkpointed there and a killed run resumes from it.
    The checkpoints are deleted only once every seed's outputs are written: DVC deletes a
    stage's outputs before rerunning it, and a finished seed's last checkpoint lets the rerun
    skip its training."""
    cfg = config.train
    if cfg.sync_bn and not torch.cuda.is_available():
        raise DroplabError(f"train.sync_bn is true for {config.name}, but this machine has no CUDA GPU: torch's "
                           "SyncBatchNorm runs on CUDA only. Set train.sync_bn: false to train here")
    with distributed.process_group() as (shard, device):
        distributed.check_divides(cfg.batch_size, shard)
        seed_everything(seeds[0], cfg.threads, cfg.compile)
        if device.type == "cpu" and not kernel_pins.pinned() and shard.rank == 0:
            print(f"droplab train: note: CPU kernels not pinned ({kernel_pins.unpinned_reason()}); the numbers "
                  "will not match other machines' bit for bit", file=sys.stderr)
        meta = load_meta(prepared)
        prepared_splits = load_splits(prepared / "arrays.npz", device, meta)
        ctx = make_context(config, meta, shard, device)
        files = RunFiles(models_dir, metrics_dir, plots_dir, checkpoints_dir or RunFiles.checkpoints)
        results: dict[int, RunResult] = {}
        resumes: list[Path] = []
        for seed in seeds:
            run = config.run(seed)
            splits = subsets(prepared_splits, config.sizes, config.split_seed, seed)
            resume = None
            if checkpoints_dir is not None:
                resume = Resume(files.checkpoint(run), run_identity(config, run, prepared, ctx))
                resumes.append(resume.path)
            with live.earlier_kept(files.live(run)) if shard.rank == 0 else nullcontext():
                with run_log(files, run, shard) as log:  # closed before any output is written
                    trained = train_run(config, run, splits, meta, ctx, resume, log)
                confusion = trained.test.pop("confusion")
                result = run_result(trained.history, trained.test, splits, meta.classes)
                if shard.rank == 0:
                    start = time.perf_counter()
                    bn = measure(trained.model, splits, ctx, seed, trained.test) if measure else None
                    speed = {**trained.speed, "analysis_seconds": round(time.perf_counter() - start, 3)}
                    rows = confusion_file.confusion_rows(confusion, meta.classes)
                    write_outputs(files, config, run, RunOutputs(
                        trained.history.best_epoch, trained.best_state, rows, result, bn, speed))
            results[seed] = result
        if shard.rank == 0:
            for path in resumes:
                path.unlink(missing_ok=True)
    return results
