"""A variant in params.yaml: its model family's spec plus where its rates come from, whether its
input is normalized, and its own train keys. The union of variants is built from the family
registry (models.families), so a new family needs no edit here."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import BaseModel, Field, create_model

from droplab.config.settings import TrainOverride
from droplab.models.families import FAMILIES
from droplab.schema import Strict

RateRef = Annotated[
    str,
    Field(
        description="params key holding this variant's dropout rate(s): 'dropout' to follow "
        "the top-level knob, or 'fixed_p.<name>'",
    ),
]


class VariantFields(Strict):
    """What a variant adds to its model family's spec: where its rates come from, whether its
    input is normalized, and its own train settings."""

    p: RateRef
    normalize: bool = True
    train: TrainOverride = TrainOverride()  # type: ignore[valid-type]


# family tag -> its variant model (MLPSpec -> MLPVariant: the spec's fields, then the variant's)
MODEL_VARIANTS: dict[str, type[BaseModel]] = {
    tag: create_model(family.spec.__name__.removesuffix("Spec") + "Variant", __base__=(family.spec, VariantFields),
                      __module__=__name__)
    for tag, family in FAMILIES.items()}

VariantSpec = Annotated[Union[tuple(MODEL_VARIANTS.values())], Field(discriminator="model")]  # noqa: UP007


def family_fields(model: str) -> set[str]:
    """The architecture fields of a model family: what a study's `spec:` may set."""
    return set(FAMILIES[model].spec.model_fields) - {"model"}
