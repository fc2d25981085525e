"""Build a block from a list of layer names, in exactly the order the spec gives.

The spec's order *is* the architecture: ["conv", "bn", "relu", "dropout", "pool"] and
["conv", "relu", "bn", "dropout", "pool"] are two of S2's variants. BN or dropout that a
variant switches off (no "bn" in the list, or a rate of 0) is left out, not made an identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

LayerFactory = Callable[[], nn.Module]


class Dropout(nn.Dropout):
    """nn.Dropout whose mask is the same on every CPU: drawn with `torch.rand` from the seeded
    generator, in float32 whatever the input's dtype.

    torch's CPU dropout draws with `bernoulli_(p)`, which takes MKL's generator on Intel CPUs
    and ATen's elsewhere, so one seed gives other masks on AMD. Kept units are scaled by
    1 / (1 - p), as in nn.Dropout; the mask follows the input's memory layout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        keep = torch.rand_like(x, dtype=torch.float32) >= self.p
        return x * keep.to(x.dtype).div_(1.0 - self.p)


def ordered_block(order: Sequence[str], factories: dict[str, LayerFactory], rate: float) -> nn.Sequential:
    block = nn.Sequential()
    for name in order:
        if name == "dropout" and rate == 0.0:
            continue
        block.add_module(name, factories[name]())
    return block


def output_features(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Width of `module`'s flattened output for one input of `input_shape`, found by running it."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        width = module(torch.zeros(1, *input_shape)).flatten(1).shape[1]
    module.train(was_training)
    return int(width)


class Resize(nn.Module):
    """Bilinear resize of a batch to size x size (S5 fed MNIST to LeNet-5 at 32x32;
    S1/S3 ran ResNets at 64x64)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"size={self.size}"
