"""What every pass over the data needs besides the model and the data: the batch transform, the
class count, the device, bf16 autocast and this process's shard, with each "auto" resolved."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from droplab.config import VariantConfig
from droplab.records import Meta
from droplab.training.device_data import BatchTransform, Shard


@dataclass
class Context:
    """What every pass needs besides the model and the data."""

    transform: BatchTransform
    num_classes: int
    device: torch.device
    autocast: bool
    shard: Shard = Shard()


def autocast(ctx: Context) -> AbstractContextManager:
    """bf16 autocast on the context's device when the run asks for it, else nothing."""
    if not ctx.autocast:
        return nullcontext()
    return torch.autocast(ctx.device.type, dtype=torch.bfloat16)


def resolve(setting: bool | str, auto: bool) -> bool:
    """A train switch that may be "auto": `auto` then, the setting itself otherwise."""
    return auto if setting == "auto" else bool(setting)


def make_context(config: VariantConfig, meta: Meta, shard: Shard, device: torch.device) -> Context:
    """The run's transform and switches, with every "auto" resolved for `device`."""
    cfg = config.train
    on_gpu = device.type == "cuda"
    return Context(
        transform=BatchTransform(meta.mean, meta.std, config.spec.normalize, device,
                                 resolve(cfg.channels_last, on_gpu)),
        num_classes=len(meta.classes),
        device=device,
        autocast=resolve(cfg.amp, on_gpu and torch.cuda.is_bf16_supported(including_emulation=False)),
        shard=shard,
    )
