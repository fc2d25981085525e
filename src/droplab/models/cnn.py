"""S2's two-block CNN: [conv, bn, relu, dropout, pool] x 2, flatten, linear, in any block order."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from droplab.models.blocks import Dropout, ordered_block, output_features


def conv_stack(in_channels: int, channels: Sequence[int], kernels: Sequence[int], order: Sequence[str],
               rates: Sequence[float], padding: str, pool_padding: int) -> nn.Sequential:
    """Conv blocks in `order`. padding="same" keeps the size (S2); "valid" shrinks it (LeNet)."""
    stack = nn.Sequential()
    for index, (width, kernel, rate) in enumerate(zip(channels, kernels, rates, strict=True)):
        pad = kernel // 2 if padding == "same" else 0
        # BN and dropout sit wherever the order puts them, so their width is the conv's.
        factories = {
            "conv": lambda i=in_channels, o=width, k=kernel, p=pad: nn.Conv2d(i, o, k, padding=p),
            "bn": lambda o=width: nn.BatchNorm2d(o),
            "relu": lambda: nn.ReLU(inplace=False),
            "dropout": lambda r=rate: Dropout(r),
            "pool": lambda: nn.MaxPool2d(2, stride=2, padding=pool_padding),
        }
        stack.add_module(f"conv{index + 1}", ordered_block(order, factories, rate))
        in_channels = width
    return stack


class CNN(nn.Sequential):
    """`rates`: one per conv block (CNNSpec.site_rates)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, channels: Sequence[int],
                 kernels: Sequence[int], block: Sequence[str], rates: Sequence[float]):
        super().__init__()
        self.add_module("features", conv_stack(input_shape[0], channels, kernels, block, rates, "same", 1))
        self.add_module("flatten", nn.Flatten())
        self.add_module("head", nn.Linear(output_features(self, input_shape), num_classes))
