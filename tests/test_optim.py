"""The per-step learning-rate schedules, against values written out by hand."""

import math

import pytest
import torch

from droplab.config import Schedule, TrainConfig
from droplab.training.optim import build_optimizer, build_scheduler, lr_factor


def _lrs(schedule: dict, epochs: int, steps_per_epoch: int, lr: float = 0.1) -> list[float]:
    """The lr every optimizer step of a whole run uses, read from the optimizer itself."""
    cfg = TrainConfig(epochs=epochs, batch_size=1, optimizer="sgd", lr=lr, schedule=Schedule(**schedule))
    model = torch.nn.Linear(1, 1)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    seen = []
    for _ in range(epochs * steps_per_epoch):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_warmup_then_cosine_by_hand():
    # 2 epochs x 5 steps, 4 warmup steps: 0.1 * (1/4, 2/4, 3/4, 4/4), then the cosine over the remaining 6
    # steps: 0.1 * (1 + cos(pi * k / 6)) / 2 for k = 0..5
    expected = [0.025, 0.05, 0.075, 0.1,
                0.1, 0.1 * (1 + math.sqrt(3) / 2) / 2, 0.075, 0.05, 0.025, 0.1 * (1 - math.sqrt(3) / 2) / 2]
    assert _lrs({"name": "cosine", "warmup_steps": 4}, 2, 5) == pytest.approx(expected, abs=1e-12)


def test_published_step_schedule_drops_at_the_milestone_epochs():
    # S1: x0.1 at epoch 30 -> here 4 epochs x 3 steps, milestones at epochs 2 and 3, gamma 0.5, no warmup
    expected = [0.1] * 6 + [0.05] * 3 + [0.025] * 3
    assert _lrs({"name": "step", "milestones": [2, 3], "gamma": 0.5}, 4, 3) == pytest.approx(expected, abs=1e-12)


def test_warmup_then_constant():
    assert _lrs({"name": "constant", "warmup_steps": 2}, 1, 4) == pytest.approx([0.05, 0.1, 0.1, 0.1])


def test_no_warmup_cosine_starts_at_the_base_lr():
    assert lr_factor(Schedule(name="cosine"), 0, 10, 10) == 1.0
    assert lr_factor(Schedule(name="cosine"), 5, 10, 10) == pytest.approx(0.5)
