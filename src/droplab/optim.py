"""Optimizer and per-epoch learning-rate schedule from a `train` config."""

from __future__ import annotations

import torch
from torch import nn

from droplab.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD or Adam with the fused implementation: one kernel updates every parameter (CPU and
    CUDA), instead of a few small ops per parameter tensor."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               fused=True)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    schedule = cfg.schedule
    if schedule.name == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, schedule.milestones, gamma=schedule.gamma)
    if schedule.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
