"""Same params and same code give the same numbers: seed every generator, forbid
nondeterministic kernels, and keep convolutions on the pinned kernels (droplab.platform)."""

from __future__ import annotations

import random

import numpy as np
import torch

from droplab.platform import apply_torch_pins


def seed_everything(seed: int, threads: int) -> torch.Generator:
    """Seed python, numpy and torch and fix the CPU thread count (float sums depend on how work
    is split); return a CPU generator for data order and augmentation."""
    torch.set_num_threads(threads)
    apply_torch_pins()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
