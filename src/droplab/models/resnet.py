"""timm ResNet-18/50 with dropout placed relative to BN inside the residual blocks (S1) and
the pooling heads of S3.

Dropout is injected the timm way: blocks get a `norm_layer` that is a BatchNorm2d with a
dropout before or after it. It is still a BatchNorm2d with the same parameters and buffers,
so state_dict keys and timm's `zero_init_last` are untouched, and the stem and shortcut BNs,
which timm builds from the model's own `norm_layer`, stay plain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import timm
import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn

from droplab.models.blocks import Dropout, Resize, output_features
from droplab.models.norm import DROPOUT_ON_INPUT, DropoutBatchNorm2d

# The max heads use timm's "fast" pools (amax over H and W), whose backward is deterministic on
# CUDA: nn.AdaptiveMaxPool2d's, which timm's plain "max", "avgmax" and "catavgmax" build, raises
# under torch.use_deterministic_algorithms. "avg" stays timm's nn.AdaptiveAvgPool2d(1), which ATen
# computes as a mean (deterministic) and fvcore counts. Both compute the same forward; the gradient
# differs only at tied maxima, and the ties of a ResNet's final ReLU map are zeros it passes no gradient to.
GLOBAL_POOL = {"avg": "avg", "max": "fastmax", "avgmax": "fastavgmax", "catavgmax": "fastcatavgmax"}

# ResNetSpec.placement -> the norm layer of the blocks' own BNs, as timm's _NORM_MAP maps names to
# layers: "none" keeps timm's blocks, every other placement is a DropoutBatchNorm2d of that placement.
BLOCK_NORMS: dict[str, Callable[..., nn.Module] | None] = {
    "none": None, **{placement: partial(DropoutBatchNorm2d, placement=placement) for placement in DROPOUT_ON_INPUT}}


def _with_block_norm(block: type[nn.Module], norm_layer) -> type[nn.Module]:
    """A subclass of a timm block whose own BNs come from `norm_layer`."""

    class Block(block):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kwargs["norm_layer"] = norm_layer
            super().__init__(*args, **kwargs)

    Block.__name__ = Block.__qualname__ = f"Dropout{block.__name__}"
    return Block


def dropout_classifier(in_features: int, width: int, num_classes: int, p: float) -> nn.Sequential:
    """S3's AlexNet-style head on the flattened final map: two hidden layers of `width`."""
    layers: list[nn.Module] = [nn.Flatten()]
    layers += [Dropout(p)] if p else []
    layers += [nn.Linear(in_features, width), nn.ReLU()]
    layers += [Dropout(p)] if p else []
    layers += [nn.Linear(width, width), nn.ReLU(), nn.Linear(width, num_classes)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """resize (optional) -> timm ResNet body -> head. `rates`: the blocks' and the head's."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, arch: str, placement: str, stem: str,
                 head: str, resize: int | None, rates: Sequence[float], channels: Sequence[int] = (64, 128, 256, 512),
                 zero_init_last: bool = False):
        super().__init__()
        block_p, head_p = rates
        block = {"resnet18": BasicBlock, "resnet50": Bottleneck}[arch]
        kwargs = {}
        norm_layer = BLOCK_NORMS[placement]
        if norm_layer is not None and block_p:
            kwargs["block"] = _with_block_norm(block, partial(norm_layer, p=block_p))
        pooled = head != "dropout_classifier"
        self.resize = Resize(resize) if resize else nn.Identity()
        self.body = timm.create_model(arch, pretrained=False, in_chans=input_shape[0],
                                      num_classes=num_classes if pooled else 0,
                                      global_pool=GLOBAL_POOL[head] if pooled else "", channels=tuple(channels),
                                      zero_init_last=zero_init_last, **kwargs)
        if stem == "small":  # CIFAR-style: 3x3 stride-1 conv, no max pool, for 28-32 px inputs
            self.body.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(self.body.conv1.weight, mode="fan_out", nonlinearity="relu")  # as timm's
            self.body.maxpool = nn.Identity()
        if pooled:
            self.head = nn.Identity()
        else:
            width = channels[-1] * block.expansion
            features = output_features(nn.Sequential(self.resize, self.body), input_shape)
            self.head = dropout_classifier(features, width, num_classes, head_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.resize(x)))
