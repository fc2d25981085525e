"""Model registry: `create_model(spec, rates, input_shape, num_classes)` for every variant family."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from droplab.config import CNNSpec, LeNetSpec, MLPSpec, ResNetSpec
from droplab.models.cnn import CNN
from droplab.models.lenet import LeNet5
from droplab.models.mlp import MLP

Builder = Callable[..., nn.Module]

REGISTRY: dict[str, Builder] = {
    "mlp": lambda spec, **kw: MLP(hidden=spec.hidden, block=spec.block, init_std=spec.init_std, **kw),
    "cnn": lambda spec, **kw: CNN(channels=spec.channels, kernels=spec.kernels, block=spec.block, **kw),
    "lenet5": lambda spec, **kw: LeNet5(bn=spec.bn, input_bn=spec.input_bn, resize=spec.resize, **kw),
    "resnet": lambda spec, **kw: _resnet(spec, **kw),
}


def _resnet(spec: ResNetSpec, **kw) -> nn.Module:
    from droplab.models.resnet import ResNet  # timm takes seconds to import: only ResNet variants pay

    return ResNet(arch=spec.arch, placement=spec.placement, stem=spec.stem, head=spec.head, resize=spec.resize, **kw)


def create_model(spec: MLPSpec | CNNSpec | LeNetSpec | ResNetSpec, rates: Sequence[float], input_shape: Sequence[int],
                 num_classes: int) -> nn.Module:
    return REGISTRY[spec.model](spec, rates=rates, input_shape=tuple(input_shape), num_classes=num_classes)
