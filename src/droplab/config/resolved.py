"""A variant as its runs see it: `Params.resolve`'s result, and how it layers settings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from droplab.config.settings import TrainConfig
from droplab.config.studies import Run
from droplab.config.variants import MODEL_VARIANTS, VariantSpec
from droplab.schema import describe


def layered(model: type[BaseModel], where: str, *layers: dict[str, Any]) -> Any:
    """`layers` merged in order (each one's keys over those before it), validated as `model`; a
    problem is named with `where`, the keys that produced it."""
    try:
        return model.model_validate({key: value for layer in layers for key, value in layer.items()})
    except ValidationError as exc:
        raise ValueError(f"{where}: {describe(exc.errors()[0], MODEL_VARIANTS)}") from None


# The least share of train.lr a run's warmup must reach by its last step (step k trains at (k+1)/warmup
# of it). Not 1: the tiny config shrinks runs to a few steps under their studies' warmups, and its
# golden outputs are bit-exact; a warmup of 10**12 steps (lr ~1e-15, trained nothing, passed) is far below.
WARMUP_REACH = 0.01


def check_warmup(train: TrainConfig, images: list[int | None], where: str) -> None:
    """Refuse a warmup so long that the run never gets near its lr, where the run's length is known:
    at most `epochs` x the batches of the fewest training images any of `images` allows."""
    known = [count for count in images if count is not None]
    warmup = train.schedule.warmup_steps
    if not known or not warmup:
        return
    total = train.epochs * math.ceil(min(known) / train.batch_size)
    if total < WARMUP_REACH * warmup:
        raise ValueError(f"{where}: schedule.warmup_steps = {warmup} is far longer than the run's at most {total} "
                         f"steps ({train.epochs} epochs of at most {min(known)} images in batches of "
                         f"{train.batch_size}): its lr would stay below {WARMUP_REACH:.0%} of train.lr; "
                         "shorten the warmup")


@dataclass(frozen=True)
class VariantConfig:
    """One variant as its runs see it, nanoGPT-style: computed once by `Params.resolve` and
    handed whole to training, profiling and the benchmarks, which derive nothing themselves."""

    name: str
    spec: VariantSpec  # the variant's spec with its home study's spec keys at this scale applied
    rates: list[float]  # as params.yaml gives them: one for every dropout site, or one each
    train: TrainConfig  # top-level train, then the home study's scale, then the variant's own keys
    sizes: dict[str, int | None]  # images of each prepared split it uses (None: all)
    split_seed: int  # seeds the subsets, the same for every run
    lr_keys: str  # where its lr is set, named when the loss diverges
    rate: float | None = None  # the sweep rate it trains at, if its study sweeps
    rate_key: str = "dropout"  # the params key its rates come from (Params.rate_key)

    def run(self, seed: int) -> Run:
        return Run(variant=self.name, seed=seed, rate_key=self.rate_key, rate=self.rate)
