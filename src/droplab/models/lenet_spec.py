"""LeNet-5's spec: BN switches and the input size; five dropout sites."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from droplab.models.families import register_family
from droplab.models.spec import ModelSpec

if TYPE_CHECKING:
    from torch import nn

SITES = ("input", "conv1", "conv2", "fc1", "fc2")  # where models/lenet.py puts a dropout, in order


class LeNetSpec(ModelSpec):
    """Dropout sites: input, conv1, conv2, fc1, fc2."""

    size_fields: ClassVar[tuple[str, ...]] = ("resize",)
    model: Literal["lenet5"]
    bn: bool = True
    input_bn: bool = False
    # two 5x5 valid convs, each followed by a 2x2 pool, leave at least 1 pixel only from 16 px up
    resize: int = Field(32, ge=16)

    def dropout_sites(self) -> int:
        return len(SITES)


@register_family(LeNetSpec)
def build_lenet(spec: LeNetSpec, rates: Sequence[float], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    from droplab.models.lenet import LeNet5

    return LeNet5(input_shape, num_classes, bn=spec.bn, input_bn=spec.input_bn, resize=spec.resize, rates=rates)
