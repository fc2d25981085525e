"""The CNN family's spec: channels, kernels and the block order; one dropout site per conv block."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from droplab.models.families import register_family
from droplab.models.spec import LayeredSpec, check_order

if TYPE_CHECKING:
    from torch import nn

LAYERS = ("conv", "bn", "relu", "dropout", "pool")  # the names a block may list; models/cnn.py builds each


class CNNSpec(LayeredSpec):
    """Dropout sites: one per conv block."""

    size_fields: ClassVar[tuple[str, ...]] = ("channels", "kernels")
    model: Literal["cnn"]
    channels: list[Annotated[int, Field(gt=0)]] = [64, 128]
    kernels: list[Annotated[int, Field(gt=0)]] = [3, 5]
    block: list[str] = ["conv", "bn", "relu", "dropout", "pool"]

    @field_validator("block")
    @classmethod
    def _block(cls, order: list[str]) -> list[str]:
        return check_order(order, LAYERS, ("conv", "pool"))

    @model_validator(mode="after")
    def _same_depth(self) -> CNNSpec:
        if len(self.channels) != len(self.kernels):
            raise ValueError("channels and kernels must have the same length")
        return self

    def dropout_sites(self) -> int:
        return len(self.channels)


@register_family(CNNSpec)
def build_cnn(spec: CNNSpec, rates: Sequence[float], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    from droplab.models.cnn import CNN

    return CNN(input_shape, num_classes, channels=spec.channels, kernels=spec.kernels, block=spec.block, rates=rates)
