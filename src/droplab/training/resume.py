"""Resuming one seed's run from its per-epoch checkpoint: what the checkpoint must match to be
resumed (`run_identity`), and the checkpoint rank 0 read, shared with every rank."""

from __future__ import annotations

import hashlib
import json
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
    process count); a collective under DDP. How it computes is also named on its own
    (`computes`), so that a checkpoint that differs from this run in its params alone can be told
    apart (set_aside_if_stale)."""
    computes = {"processes": ctx.shard.world, "amp": ctx.autocast,
                "channels_last": ctx.transform.memory_format == torch.channels_last,
                "kernels": distributed.all_gather_object(kernel_pins.kernel_identity(ctx.device), ctx.shard)}
    computed = {"spec": config.spec.model_dump(mode="json"), "rates": config.rates,
                "train": config.train.model_dump(mode="json"), "sizes": config.sizes,
                "split_seed": config.split_seed, **computes}
    digest = hashlib.sha256(json.dumps(computes, sort_keys=True, default=str).encode()).hexdigest()
    return {**checkpoint.identity(run.variant, run.seed, computed, prepared), "computes": digest}


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
            refusal = None if set_aside_if_stale(resume) else str(exc)
    saved, refusal = distributed.broadcast_object((saved, refusal), shard)
    if refusal is not None:
        raise checkpoint.CheckpointError(refusal)
    return saved


def set_aside_if_stale(resume: Resume) -> bool:
    """True, with the checkpoint renamed to `<name>.stale` and one line said, when it is this
    run's (variant, seed, code, data, how it computes) under earlier params. A run killed under
    one params.yaml, then a run-cache restore (which trains nothing, so deletes nothing), would
    otherwise stop the next legitimate change at this file; it can never be resumed, and DVC would
    train that change from scratch anyway. Its bytes are kept. One of another variant or seed,
    other code or data, or another device, process count or kernel pin is still refused."""
    try:
        checkpoint.load(resume.path, {key: value for key, value in resume.identity.items() if key != "config"})
    except checkpoint.CheckpointError:
        return False
    stale = resume.path.with_name(resume.path.name + ".stale")
    resume.path.replace(stale)
    print(f"{resume.path}: this run's checkpoint under other params (changed since it stopped) cannot "
          f"be resumed; set aside as {stale.name}, training from scratch", flush=True)
    return True
