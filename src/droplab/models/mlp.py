"""Multilayer perceptrons: S2's 3072-1024-10 and S4's d2l 784-256-256-10."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

from torch import nn

from droplab.models.blocks import Dropout, ordered_block


def linear_stack(in_features: int, hidden: Sequence[int], order: Sequence[str],
                 rates: Sequence[float]) -> tuple[nn.Sequential, int]:
    """Hidden layers, each built in `order`; returns the stack and its output width."""
    stack = nn.Sequential()
    for index, (width, rate) in enumerate(zip(hidden, rates, strict=True)):
        factories = {
            "linear": lambda i=in_features, o=width: nn.Linear(i, o),
            "bn": lambda o=width: nn.BatchNorm1d(o),
            "relu": lambda: nn.ReLU(inplace=False),
            "dropout": lambda r=rate: Dropout(r),
        }
        stack.add_module(f"fc{index + 1}", ordered_block(order, factories, rate))
        in_features = width
    return stack, in_features


class MLP(nn.Sequential):
    """`rates`: one per hidden layer (MLPSpec.site_rates)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int],
                 block: Sequence[str], rates: Sequence[float], init_std: float | None = None):
        stack, width = linear_stack(prod(input_shape), hidden, block, rates)
        super().__init__()
        self.add_module("flatten", nn.Flatten())
        self.add_module("hidden", stack)
        self.add_module("head", nn.Linear(width, num_classes))
        if init_std is not None:
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=init_std)
                    nn.init.zeros_(module.bias)
