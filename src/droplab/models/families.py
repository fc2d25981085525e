"""The model-family registry, timm's `@register_model` shape: each family's spec module registers
a builder under the spec's `model` tag, and the config builds its variant union from this table.

Registering names the spec class only; the builder imports its torch module when it is called,
so params.yaml validates (and `droplab.config` imports) without torch. Adding a family is one
spec module with one `@register_family` builder, its torch module, and its import in
models/__init__.py (which fixes the families' order: the order params.yaml's errors list them in).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, get_args

from droplab.models.spec import ModelSpec

if TYPE_CHECKING:
    from torch import nn

Spec = TypeVar("Spec", bound=ModelSpec)
# (spec, rates=one per dropout site, input_shape, num_classes) -> the model, its torch imports inside
Builder = Callable[..., "nn.Module"]


@dataclass(frozen=True)
class Family:
    spec: type[ModelSpec]
    build: Builder


FAMILIES: dict[str, Family] = {}


def family_tag(spec: type[ModelSpec]) -> str:
    """The tag a spec class narrows `model` to (its Literal), which names its family in params.yaml."""
    (tag,) = get_args(spec.model_fields["model"].annotation)
    return tag


def register_family(spec: type[Spec]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated builder for `spec`'s family, under the spec's `model` tag."""

    def register(build: Callable[..., Any]) -> Callable[..., Any]:
        tag = family_tag(spec)
        if tag in FAMILIES:
            raise ValueError(f"model family {tag!r} is registered twice")
        FAMILIES[tag] = Family(spec, build)
        return build

    return register


def build(spec: ModelSpec, rates: Sequence[float], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The model of `spec`'s family, `rates` one per dropout site."""
    return FAMILIES[spec.model].build(spec, rates=rates, input_shape=input_shape, num_classes=num_classes)
