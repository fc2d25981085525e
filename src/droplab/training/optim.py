"""Optimizer and per-step learning-rate schedule from a `train` config."""

from __future__ import annotations

import math

import torch
from torch import nn

from droplab.config import Schedule, TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD or Adam with the fused implementation: one kernel updates every parameter (CPU and
    CUDA), instead of a few small ops per parameter tensor."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               fused=True)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def lr_factor(schedule: Schedule, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """The multiple of the base lr for optimizer step `step` (0-based).

    Warmup rises linearly to 1 over `warmup_steps` (step k uses (k+1)/warmup), so the first
    steps of a freshly initialised network, whose BN statistics are still at their initial
    values, are small. After it: constant, cosine from 1 at the end of warmup to 0 at
    `total_steps`, or gamma to the power of the milestone epochs passed."""
    if step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    if schedule.name == "cosine":
        span = max(total_steps - schedule.warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * (step - schedule.warmup_steps) / span))
    if schedule.name == "step":
        passed = sum(step >= milestone * steps_per_epoch for milestone in schedule.milestones)
        return schedule.gamma ** passed
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per optimizer step. Its state is the step count alone, so a resumed run
    continues the schedule where the checkpoint left it."""
    total = cfg.epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg.schedule, step, steps_per_epoch, total))
