"""The timm ResNet family's spec (S1's dropout placement, S3's heads): two dropout sites."""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

from pydantic import Field

from droplab.models.spec import ModelSpec

Head = Literal["avg", "max", "avgmax", "catavgmax", "dropout_classifier"]
HEADS: tuple[str, ...] = get_args(Head)


class ResNetSpec(ModelSpec):
    """Dropout sites: inside every residual block (where `placement` says), the dropout head."""

    size_fields: ClassVar[tuple[str, ...]] = ("arch",)
    model: Literal["resnet"]
    arch: Literal["resnet18", "resnet50"]
    placement: Literal["none", "after_bn", "before_bn"] = "none"
    stem: Literal["imagenet", "small"] = "imagenet"
    head: Head = "avg"
    resize: int | None = Field(None, gt=0)

    def dropout_sites(self) -> int:
        return 2

    def unbuilt_sites(self) -> dict[int, str]:
        unbuilt = {0: "placement is none"} if self.placement == "none" else {}
        if self.head != "dropout_classifier":
            unbuilt[1] = f"head {self.head} has no dropout"
        return unbuilt
