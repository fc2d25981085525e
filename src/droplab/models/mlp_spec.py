"""The MLP family's spec: hidden widths and the block order; one dropout site per hidden layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from droplab.models.families import register_family
from droplab.models.spec import LayeredSpec, check_order

if TYPE_CHECKING:
    from torch import nn

LAYERS = ("linear", "bn", "relu", "dropout")  # the names a block may list; models/mlp.py builds each


class MLPSpec(LayeredSpec):
    """Dropout sites: one per hidden layer. With no hidden layer it is a linear (softmax
    regression) classifier: the floor a study's models must clear to count as trained."""

    size_fields: ClassVar[tuple[str, ...]] = ("hidden",)
    model: Literal["mlp"]
    hidden: list[Annotated[int, Field(gt=0)]]
    block: list[str] = ["linear", "bn", "relu", "dropout"]
    init_std: float | None = Field(None, gt=0)

    @field_validator("block")
    @classmethod
    def _block(cls, order: list[str]) -> list[str]:
        return check_order(order, LAYERS, ("linear",))

    def dropout_sites(self) -> int:
        return len(self.hidden)


@register_family(MLPSpec)
def build_mlp(spec: MLPSpec, rates: Sequence[float], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    from droplab.models.mlp import MLP

    return MLP(input_shape, num_classes, hidden=spec.hidden, block=spec.block, rates=rates, init_std=spec.init_std)
