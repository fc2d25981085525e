"""The timm ResNet family's spec (S1's dropout placement, S3's heads): two dropout sites."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field

from droplab.models.families import register_family
from droplab.models.spec import ModelSpec

if TYPE_CHECKING:
    from torch import nn

Head = Literal["avg", "max", "avgmax", "catavgmax", "dropout_classifier"]
PUBLISHED_CHANNELS = [64, 128, 256, 512]


class ResNetSpec(ModelSpec):
    """Dropout sites: inside every residual block (where `placement` says), the dropout head."""

    size_fields: ClassVar[tuple[str, ...]] = ("arch", "channels")
    model: Literal["resnet"]
    arch: Literal["resnet18", "resnet50"]
    placement: Literal["none", "after_bn", "before_bn"] = "none"
    stem: Literal["imagenet", "small"] = "imagenet"
    head: Head = "avg"
    resize: int | None = Field(None, gt=0)
    # The four stages' widths (timm's `channels`): the published ResNet's by default. Narrower
    # stages reach the studies' regime in a CPU's budget; the report names them beside the
    # published ones. The stem keeps its 64 channels (timm's 7x7 stem has that width fixed), so
    # a ResNet-18 with narrower stages gets a 1x1 projection shortcut in its first block.
    channels: list[Annotated[int, Field(gt=0)]] = Field(PUBLISHED_CHANNELS, min_length=4, max_length=4)
    # torchvision's ResNet, which the studies modified, starts every BN at gamma 1; timm's default
    # zeroes each block's last BN, which switches the residual branches off at the start.
    zero_init_last: bool = False

    def narrowed(self) -> bool:
        return self.channels != PUBLISHED_CHANNELS

    def dropout_sites(self) -> int:
        return 2

    def unbuilt_sites(self) -> dict[int, str]:
        unbuilt = {0: "placement is none"} if self.placement == "none" else {}
        if self.head != "dropout_classifier":
            unbuilt[1] = f"head {self.head} has no dropout"
        return unbuilt


@register_family(ResNetSpec)
def build_resnet(spec: ResNetSpec, rates: Sequence[float], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    from droplab.models.resnet import ResNet  # timm takes seconds to import: only ResNet variants pay

    return ResNet(input_shape, num_classes, arch=spec.arch, placement=spec.placement, stem=spec.stem, head=spec.head,
                  resize=spec.resize, rates=rates, channels=spec.channels, zero_init_last=spec.zero_init_last)
