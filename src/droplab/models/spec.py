"""What every model family's spec shares: how many dropout sites it has, which of them it
builds, and one rate per site. Torch-free, so params.yaml validates without importing torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from droplab.schema import Strict, first_repeated


class ModelSpec(Strict):
    """A family's architecture fields. Subclasses say their dropout sites once; the builder
    gets one rate per site and the config checks rates against the same count."""

    size_fields: ClassVar[tuple[str, ...]]  # what to shrink when the model does not fit in memory
    model: str  # the family's tag: each subclass narrows it to its own Literal

    def dropout_sites(self) -> int:
        raise NotImplementedError

    def unbuilt_sites(self) -> dict[int, str]:
        """Dropout sites this spec builds no Dropout at -> why; a rate there would do nothing."""
        return {}

    def site_rates(self, rates: Sequence[float]) -> list[float]:
        """One rate for every dropout site: a single rate repeated, or one each."""
        sites = self.dropout_sites()
        if len(rates) == 1:
            return list(rates) * sites
        if len(rates) != sites:
            raise ValueError(f"{len(rates)} dropout rates given, but this {self.model} has {sites} dropout "
                             f"sites; give 1 or {sites}")
        return list(rates)


def check_order(order: list[str], allowed: tuple[str, ...], required: tuple[str, ...]) -> list[str]:
    """A block's layer names: each known, none twice, the required ones present."""
    unknown = [name for name in order if name not in allowed]
    if unknown:
        raise ValueError(f"unknown layer {unknown[0]!r}; allowed: {', '.join(allowed)}")
    if (twice := first_repeated(order)) is not None:
        raise ValueError(f"layer {twice!r} appears more than once")
    missing = [name for name in required if name not in order]
    if missing:
        raise ValueError(f"block must contain {missing[0]!r}")
    return order


class LayeredSpec(ModelSpec):
    """A family whose `block` lists its layers in order: without a 'dropout' layer there, no site
    builds a Dropout. Each subclass declares `block` itself, with its own default: a field declared
    here would come first in every dump and so change the bytes of every saved spec."""

    if TYPE_CHECKING:
        block: list[str]

    def unbuilt_sites(self) -> dict[int, str]:
        if "dropout" in self.block:
            return {}
        return dict.fromkeys(range(self.dropout_sites()), "its block has no 'dropout' layer")
