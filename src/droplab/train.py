"""Train one variant: flat `train_one_epoch` and `evaluate`, one `main`.

Validation runs every epoch; the weights of the best validation epoch (highest val acc1,
earliest on ties) are kept and the test split is evaluated once, with those weights.
Under torchrun every process trains its shard of each batch (DDP averages the gradients),
every process evaluates the whole split, and rank 0 alone writes.
"""

from __future__ import annotations

import copy
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from droplab import checkpoint, distributed, platform, torch_files
from droplab.atomic import atomic_files, json_text
from droplab.config import Params, Run, TrainConfig
from droplab.determinism import seed_everything
from droplab.device_data import BatchTransform, Shard, Split, augment, eval_batches, load_splits, train_batches
from droplab.errors import DroplabError
from droplab.metrics import Meter
from droplab.models import create_model
from droplab.optim import build_optimizer, build_scheduler
from droplab.prepare import load_meta

CURVE_COLUMNS = ("epoch", "train_loss", "train_acc1", "val_loss", "val_acc1", "val_acc5")


@dataclass
class Context:
    """What every pass needs besides the model and the data."""

    transform: BatchTransform
    num_classes: int
    device: torch.device
    autocast: bool
    shard: Shard = Shard()


@dataclass
class History:
    rows: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: dict[str, float] = field(default_factory=dict)
    best_train: dict[str, float] = field(default_factory=dict)


class NonFiniteLoss(Exception):
    def __init__(self, step: int, value: float):
        super().__init__(step, value)
        self.step, self.value = step, value


@dataclass(frozen=True)
class Resume:
    """Where a run's per-epoch checkpoint lives, and what a checkpoint must match to be resumed."""

    path: Path
    identity: dict[str, str]


def _autocast(ctx: Context):
    if not ctx.autocast:
        return nullcontext()
    return torch.autocast(ctx.device.type, dtype=torch.bfloat16)


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, split: Split, cfg: TrainConfig,
                    ctx: Context, generator: torch.Generator, progress: tqdm | None) -> dict[str, float]:
    model.train()
    meter = Meter(ctx.num_classes, ctx.device)
    for images, labels in train_batches(split, cfg.batch_size, generator, ctx.shard):
        x = ctx.transform(images)
        if cfg.augment.crop_pad or cfg.augment.flip:
            x = augment(x, cfg.augment.crop_pad, cfg.augment.flip, generator, ctx.shard)
        with _autocast(ctx):
            logits = model(x)
            loss_sum = F.cross_entropy(logits.float(), labels, reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        (loss_sum / len(labels)).backward()
        optimizer.step()
        meter.update(logits, labels, loss_sum)
        if progress is not None:
            progress.update(1)
    bad = meter.first_nonfinite_loss()
    if bad is not None:
        raise NonFiniteLoss(*bad)
    return meter.summary(distributed.sum_across(ctx.shard))


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int, ctx: Context) -> dict[str, float]:
    model.eval()
    meter = Meter(ctx.num_classes, ctx.device)
    for images, labels in eval_batches(split, batch_size):
        with _autocast(ctx):
            logits = model(ctx.transform(images))
        meter.update(logits, labels, F.cross_entropy(logits.float(), labels, reduction="sum"))
    return meter.summary()


def for_training(model: nn.Module, cfg: TrainConfig, ctx: Context) -> nn.Module:
    """The module the training steps call: DDP across processes, then torch.compile when asked.
    Both share `model`'s parameters, so evaluation and checkpoints use `model` itself."""
    if ctx.shard.world > 1:
        model = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    return torch.compile(model) if cfg.compile else model


def fit(model: nn.Module, splits: dict[str, Split], cfg: TrainConfig, ctx: Context, generator: torch.Generator,
        name: str, resume: Resume | None = None) -> tuple[History, dict[str, torch.Tensor], float]:
    """Train for cfg.epochs, checkpointing every epoch to `resume` and starting after its last
    epoch when it has one; return the history, the best epoch's weights and the training seconds."""
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    trainable = for_training(model, cfg, ctx)
    history = History()
    best_state: dict[str, torch.Tensor] = {}
    steps = len(splits["train"]) // cfg.batch_size
    main_process = ctx.shard.rank == 0
    on_terminal = sys.stderr.isatty() and main_process
    train_seconds = 0.0
    first_epoch = 1
    saved = checkpoint.load(resume.path, resume.identity) if resume else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        history, best_state, train_seconds = History(**saved["history"]), saved["best_state"], saved["train_seconds"]
        checkpoint.restore_rng_states(saved["rng"], generator)
        first_epoch = saved["epoch"] + 1
        if main_process:
            print(f"{name}: resuming after epoch {saved['epoch']} from {resume.path}", flush=True)
    for epoch in range(first_epoch, cfg.epochs + 1):
        progress = tqdm(total=steps, desc=f"{name} {epoch}/{cfg.epochs}", leave=False) if on_terminal else None
        start = time.perf_counter()
        try:
            train = train_one_epoch(trainable, optimizer, splits["train"], cfg, ctx, generator, progress)
        except NonFiniteLoss as bad:
            raise DroplabError(
                f"{name}: the training loss became {bad.value} at epoch {epoch}, step {bad.step} of {steps}. "
                f"Try a lower learning rate (train.lr or variants.{name}.train.lr, now {cfg.lr:g}). "
                + (f"The checkpoint of epoch {epoch - 1} is kept in {resume.path}" if resume and epoch > 1
                   else "Nothing was written")) from None
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()  # the loop never waits for the GPU; the clock must
        train_seconds += time.perf_counter() - start
        scheduler.step()
        val = evaluate(model, splits["val"], cfg.eval_batch_size, ctx)
        if progress is not None:
            progress.close()
        history.rows.append({"epoch": epoch, "train_loss": train["loss"], "train_acc1": train["acc1"],
                             "val_loss": val["loss"], "val_acc1": val["acc1"], "val_acc5": val["acc5"]})
        if main_process:
            print(f"{name} epoch {epoch}/{cfg.epochs}: train loss {train['loss']:.4f} acc1 {train['acc1']:.4f} | "
                  f"val loss {val['loss']:.4f} acc1 {val['acc1']:.4f}", flush=True)
        if not history.best_val or val["acc1"] > history.best_val["acc1"]:
            history.best_epoch, history.best_val, history.best_train = epoch, val, train
            best_state = copy.deepcopy(model.state_dict())
        if resume and main_process:
            checkpoint.save(resume.path, resume.identity, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "history": asdict(history), "best_state": best_state,
                "train_seconds": train_seconds, "rng": checkpoint.rng_states(generator)})
    return history, best_state, train_seconds


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 6) for key, value in metrics.items()}


def curves_tsv(rows: list[dict[str, float]]) -> str:
    lines = ["\t".join(CURVE_COLUMNS)]
    for row in rows:
        lines.append("\t".join(str(row["epoch"]) if col == "epoch" else f"{row[col]:.6f}" for col in CURVE_COLUMNS))
    return "\n".join(lines) + "\n"


def _resolve(setting: bool | str, auto: bool) -> bool:
    return auto if setting == "auto" else bool(setting)


def run_identity(params: Params, run: Run, prepared: Path, processes: int) -> dict[str, str]:
    """What a checkpoint must match to be resumed by this run."""
    config = {"spec": params.variants[run.variant].model_dump(mode="json"), "rates": params.rates(run.variant),
              "train": params.train_config(run.variant).model_dump(mode="json"), "processes": processes,
              "cpu_kernels": platform.unpinned_reason() or "pinned"}
    return checkpoint.identity(run.variant, run.seed, config, prepared)


def main(params: Params, run: Run, prepared: Path, models_dir: Path, metrics_dir: Path, plots_dir: Path,
         checkpoints_dir: Path | None = None) -> dict:
    """Train one (variant, seed) run, then write its model, metrics, speed and curves (rank 0).

    With `checkpoints_dir`, every epoch is checkpointed there and a killed run resumes from it;
    the checkpoint is deleted once the outputs are written."""
    variant = run.variant
    spec = params.variants[variant]
    cfg = params.train_config(variant)
    shard = distributed.start("cuda" if torch.cuda.is_available() else "cpu")
    distributed.check_divides(cfg.batch_size, shard)
    device = distributed.device_for(shard)
    generator = seed_everything(run.seed, cfg.threads)
    if device.type == "cpu" and not platform.pinned() and shard.rank == 0:
        print(f"droplab train: note: CPU kernels not pinned ({platform.unpinned_reason()}); the numbers will not match "
              "other machines' bit for bit", file=sys.stderr)
    meta = load_meta(prepared)
    splits = load_splits(prepared / "arrays.npz", device, meta)
    on_gpu = device.type == "cuda"
    channels_last = _resolve(cfg.channels_last, on_gpu)
    ctx = Context(
        transform=BatchTransform(meta["mean"], meta["std"], spec.normalize, device, channels_last),
        num_classes=len(meta["classes"]),
        device=device,
        autocast=_resolve(cfg.amp, on_gpu and torch.cuda.is_bf16_supported(including_emulation=False)),
        shard=shard,
    )
    model = create_model(spec, params.rates(variant), meta["input_shape"], ctx.num_classes).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if shard.rank:  # DDP copies rank 0's weights; the other ranks draw their own dropout masks
        torch.manual_seed(run.seed + 1000 * shard.rank)

    resume = None
    if checkpoints_dir is not None:
        resume = Resume(run.path(checkpoints_dir, ".pt"), run_identity(params, run, prepared, shard.world))

    start = time.perf_counter()
    history, best_state, train_seconds = fit(model, splits, cfg, ctx, generator, variant, resume)
    model.load_state_dict(best_state)
    test = evaluate(model, splits["test"], cfg.eval_batch_size, ctx)
    seconds = time.perf_counter() - start

    result = {"best_epoch": history.best_epoch, "train": _rounded(history.best_train),
              "val": _rounded(history.best_val), "test": _rounded(test)}
    if shard.rank == 0:
        _write_outputs(params, run, history, best_state, result, models_dir, metrics_dir, plots_dir,
                       {"seconds": round(seconds, 3),
                        "images_per_sec": round(cfg.epochs * (len(splits["train"]) // cfg.batch_size)
                                                * cfg.batch_size / train_seconds, 1),
                        "device": str(device), "processes": shard.world,
                        "platform": platform.fingerprint(device.type)})
        if resume is not None:
            resume.path.unlink(missing_ok=True)
    distributed.stop()
    return result


def _write_outputs(params: Params, run: Run, history: History, best_state: dict[str, torch.Tensor], result: dict,
                   models_dir: Path, metrics_dir: Path, plots_dir: Path, speed: dict) -> None:
    """All four files or none: a failure half way (a full disk) leaves the earlier ones untouched."""
    with atomic_files() as stage:
        torch_files.save({"variant": run.variant, "seed": run.seed, "spec": params.variants[run.variant].model_dump(),
                          "rates": params.rates(run.variant), "best_epoch": history.best_epoch,
                          "state_dict": best_state}, stage(run.path(models_dir, ".pt")))
        stage(run.path(plots_dir / "train", ".tsv")).write_text(curves_tsv(history.rows))
        stage(run.path(metrics_dir / "speed", ".json")).write_text(json_text(speed))
        stage(run.path(metrics_dir / "train", ".json")).write_text(json_text(result))
