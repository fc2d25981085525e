"""How a run trains and what data it reads: params.yaml's `train`, `data` and `analysis`, and the
all-optional copy of `train` that a study's scale and a variant override it with."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model, model_validator

from droplab.schema import Strict

Seed = Annotated[int, Field(ge=0, lt=2**32, description="numpy seeds must lie in [0, 2**32)")]


class DataConfig(Strict):
    source_dir: str | None = None
    split_seed: Seed = 0
    val_size: int = Field(10000, gt=0)
    # the prepared splits are full size unless these cut them (the tiny test config does); a study
    # draws its own subsets at its scale (see Scale)
    train_limit: int | None = Field(None, gt=0)
    test_limit: int | None = Field(None, gt=0)


class AnalysisConfig(Strict):
    train_images: int | None = Field(2000, gt=0)  # training images the BN analysis passes over


class Schedule(Strict):
    """A per-step learning-rate schedule: linear warmup over `warmup_steps`, then constant, cosine
    (to 0 at the last step) or step (x gamma at each milestone epoch)."""

    name: Literal["constant", "step", "cosine"] = "constant"
    milestones: list[Annotated[int, Field(gt=0)]] = []
    gamma: float = Field(0.1, gt=0)
    warmup_steps: int = Field(0, ge=0)


class Augment(Strict):
    crop_pad: int = Field(0, ge=0)
    flip: bool = False


class TrainConfig(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    optimizer: Literal["sgd", "adam"]
    lr: float = Field(gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Schedule = Schedule()
    augment: Augment = Augment()
    eval_batch_size: int = Field(1000, gt=0)
    threads: int = Field(2, gt=0)
    # "auto": on for CUDA, off on the CPU (where bf16 and NHWC convolutions are slower here and
    # would change the numbers); true or false force it on any device.
    amp: bool | Literal["auto"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False
    nproc_per_node: int = Field(1, gt=0)  # > 1: data-parallel under torchrun, batch_size is the global batch
    sync_bn: bool = False  # BN statistics over the global batch under DDP (CUDA only; dropout is kept)

    @model_validator(mode="after")
    def _milestones_within_epochs(self) -> TrainConfig:
        late = [m for m in self.schedule.milestones if m >= self.epochs]
        if self.schedule.name == "step" and late:
            raise ValueError(f"schedule.milestones: epoch {late[0]} is not before the last epoch ({self.epochs}), "
                             "so the lr would never drop there")
        return self

    @model_validator(mode="after")
    def _momentum_is_sgds(self) -> TrainConfig:
        if self.optimizer == "adam" and self.momentum:
            raise ValueError(f"momentum = {self.momentum} is SGD's; Adam would ignore it (its betas are fixed "
                             "at torch's defaults): remove it or use optimizer: sgd")
        return self


def _all_optional(model: type[BaseModel], name: str) -> type[BaseModel]:
    """The same fields as `model`, each optional: a variant overrides only what it names."""
    fields: dict[str, Any] = {}
    for field_name, field in model.model_fields.items():
        bounded = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        fields[field_name] = (bounded | None, None)  # keeps the gt/ge bounds of the original
    return create_model(name, __config__=Strict.model_config, **fields)


TrainOverride = _all_optional(TrainConfig, "TrainOverride")
