"""LeNet-5 as S5 used it: input at 32x32, optional BN on the raw input, BN and dropout switches."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from droplab.models.blocks import Dropout, Resize, output_features
from droplab.models.cnn import conv_stack
from droplab.models.mlp import linear_stack


class LeNet5(nn.Sequential):
    """`rates`: one per dropout site of lenet_spec.SITES (input, conv1, conv2, fc1, fc2)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, bn: bool, input_bn: bool,
                 resize: int, rates: Sequence[float]):
        super().__init__()
        p_input, p_conv1, p_conv2, p_fc1, p_fc2 = rates
        channels = input_shape[0]
        self.add_module("resize", Resize(resize))
        if input_bn:
            self.add_module("input_bn", nn.BatchNorm2d(channels))
        if p_input:
            self.add_module("input_dropout", Dropout(p_input))
        conv_order = ["conv", "bn", "relu", "pool", "dropout"] if bn else ["conv", "relu", "pool", "dropout"]
        self.add_module("features", conv_stack(channels, [6, 16], [5, 5], conv_order, [p_conv1, p_conv2], "valid", 0))
        self.add_module("flatten", nn.Flatten())
        fc_order = ["linear", "relu", "dropout"]
        stack, width = linear_stack(output_features(self, input_shape), [120, 84], fc_order, [p_fc1, p_fc2])
        self.add_module("hidden", stack)
        self.add_module("head", nn.Linear(width, num_classes))
