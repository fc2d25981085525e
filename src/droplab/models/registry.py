"""`create_model(spec, rates, input_shape, num_classes)` for every registered family
(models.families), timm-style, after checking the model fits in this machine's memory."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torch import nn

from droplab.errors import DroplabError
from droplab.models import families
from droplab.models.spec import ModelSpec
from droplab.records import Meta

BYTES_PER_PARAMETER = 16  # fp32 weight, gradient and Adam's two moments


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(spec: ModelSpec, build: Callable[[], nn.Module]) -> None:
    """Count the parameters on the meta device (no memory) and refuse a model that cannot train
    here, naming the spec fields that size it, instead of an allocator traceback or the OOM killer."""
    with torch.device("meta"):
        count = sum(p.numel() for p in build().parameters())
    needed, have = count * BYTES_PER_PARAMETER, physical_memory()
    if needed > have:
        fields = " and ".join(spec.size_fields)
        value = {field: getattr(spec, field) for field in spec.size_fields}
        raise DroplabError(f"{fields} {value}: this {spec.model} has {count / 1e9:.1f} G parameters, "
                           f"which need {needed / 2**30:.0f} GiB with gradients and optimizer state; this machine "
                           f"has {have / 2**30:.0f} GiB: make it smaller")


def create_model(spec: ModelSpec, rates: Sequence[float], input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """The model `spec` describes, with `rates` (one for all dropout sites, or one each)."""
    per_site = spec.site_rates(rates)

    def build() -> nn.Module:
        return families.build(spec, per_site, tuple(input_shape), num_classes)

    check_fits(spec, build)
    return build()


def create_model_for(spec: ModelSpec, rates: Sequence[float], meta: Meta) -> nn.Module:
    """`create_model` for the prepared data that meta.json describes: its input shape and classes."""
    return create_model(spec, rates, meta.input_shape, len(meta.classes))
