"""LeNet-5's spec: BN switches and the input size; five dropout sites."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from droplab.models.spec import ModelSpec

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
