"""Same params and same code give the same numbers: seed every generator, forbid
nondeterministic kernels, and keep convolutions on the pinned kernels (droplab.kernel_pins)."""

from __future__ import annotations

import random

import numpy as np
import torch

from droplab.kernel_pins import apply_torch_pins


def seed_everything(seed: int, threads: int, compiled: bool = False) -> torch.Generator:
    """Seed python, numpy and torch and fix the CPU thread count (float sums depend on how work
    is split); return a CPU generator for data order and augmentation. `compiled`: the model runs
    under torch.compile, whose own deterministic flag is then set too."""
    torch.set_num_threads(threads)
    apply_torch_pins()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if compiled:
        torch.use_deterministic_algorithms(True)
    else:
        # The same switch of ATen's kernels that torch.use_deterministic_algorithms sets; that function
        # also sets torch.compile's flag, and importing torch._inductor to do so took 2.8 s of every stage.
        torch._C._set_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
