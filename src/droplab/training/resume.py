"""Resuming one seed's run from its per-epoch checkpoint: what the checkpoint must match to be
resumed (`run_identity`), and the checkpoint rank 0 read, shared with every rank."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from droplab import kernel_pins
from droplab.config import Run, VariantConfig
from droplab.training import checkpoint, distributed
from droplab.training.context import Context
from droplab.training.device_data import Shard


@dataclass(frozen=True)
class Resume:
    """Where a run's per-epoch checkpoint lives, and what a checkpoint must match to be resumed."""

    path: Path
    identity: dict[str, str]


def run_identity(config: VariantConfig, run: Run, prepared: Path, ctx: Context) -> dict[str, str]:
    """What a checkpoint must match to be resumed by this run: its config, and how it computes
    (every rank's device, GPU model and libraries, the resolved amp and memory format, the
    process count); a collective under DDP."""
    computed = {"spec": config.spec.model_dump(mode="json"), "rates": config.rates,
                "train": config.train.model_dump(mode="json"), "sizes": config.sizes,
                "split_seed": config.split_seed, "processes": ctx.shard.world,
                "amp": ctx.autocast, "channels_last": ctx.transform.memory_format == torch.channels_last,
                "kernels": distributed.all_gather_object(kernel_pins.kernel_identity(ctx.device), ctx.shard)}
    return checkpoint.identity(run.variant, run.seed, computed, prepared)


def resume_state(resume: Resume | None, shard: Shard) -> dict | None:
    """The checkpoint to resume from, as rank 0 read it, on every rank: the other ranks (other
    nodes, perhaps) need no copy of the file. A refused checkpoint stops every rank."""
    if resume is None:
        return None
    saved: dict | None = None
    refusal: str | None = None
    if shard.rank == 0:
        try:
            saved = checkpoint.load(resume.path, resume.identity)
        except checkpoint.CheckpointError as exc:
            refusal = str(exc)
    saved, refusal = distributed.broadcast_object((saved, refusal), shard)
    if refusal is not None:
        raise checkpoint.CheckpointError(refusal)
    return saved
