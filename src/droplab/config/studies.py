"""What params.yaml's `studies` declare: each study's variants, seeds and twins, its setting at
each scale, its optional dropout-rate sweep; and a `Run`, one trained (variant, seed) pair."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from droplab.config.settings import TrainOverride
from droplab.schema import KeyProblem, Strict, distinct, first_repeated

ScaleName = Literal["cpu", "paper"]
SCALES: tuple[ScaleName, ...] = ("cpu", "paper")


class Scale(Strict):
    """A study's setting at one scale: how much data it draws, how long and how it trains.

    The subsets are seeded by data.split_seed and the same for every seed of every variant, so
    seeds differ only in initial weights, batch order and dropout masks."""

    dataset: str | None = None  # the dataset this setting was published on; reported beside the one used
    train_images: int | None = Field(None, gt=0)  # a seeded subset of the prepared split; None: all of it
    val_images: int | None = Field(None, gt=0)
    test_images: int | None = Field(None, gt=0)
    train: TrainOverride = TrainOverride()  # type: ignore[valid-type]  # over `train`; a variant's own keys win
    # over the spec of each variant whose family has the key, e.g. {resize: null} for native input size
    spec: dict[str, Any] = {}
    # variants of this study not trained at this scale, and why (claims about them read "not run")
    skip: list[str] = []
    skip_reason: str | None = None

    @model_validator(mode="after")
    def _skip_has_a_reason(self) -> Scale:
        if self.skip and not self.skip_reason:
            raise ValueError("skip needs a skip_reason: the report prints why these variants did not train")
        return self

    def sizes(self) -> dict[str, int | None]:
        """How many images of each prepared split a variant uses at this scale (None: all)."""
        return {"train": self.train_images, "val": self.val_images, "test": self.test_images}


RATE_STEP = 100  # sweep rates are whole percents: each names its runs' folder, p10 ... p90


class Sweep(Strict):
    """The published S2 protocol: every variant of the study whose rate follows `dropout` trains
    at each of `rates` instead; the aggregate stage selects the rate at which the `select`
    variant has the best mean `metric` over seeds (validation, never test), and the study's claims
    and tables read each swept variant at that rate."""

    rates: list[float] = Field(min_length=2)
    select: str
    metric: Literal["val.loss", "val.acc1"] = "val.loss"

    @field_validator("rates")
    @classmethod
    def _whole_percents(cls, rates: list[float]) -> list[float]:
        for rate in rates:
            if not 0 < rate < 1 or abs(rate * RATE_STEP - round(rate * RATE_STEP)) > 1e-9:
                raise ValueError(f"rate {rate}: expected a whole percent strictly between 0 and 1 (0.01 ... 0.99); "
                                 "it names the runs' folder")
        if (twice := first_repeated([round(rate * RATE_STEP) for rate in rates])) is not None:
            raise ValueError(f"rate {twice / RATE_STEP:g} appears more than once")
        return rates


def rate_tag(rate: float) -> str:
    """A sweep rate as the name of its runs' folder and the suffix of its label: 0.8 -> 'p80'."""
    return f"p{round(rate * RATE_STEP):02d}"


class Study(Strict):
    title: str
    variants: list[str] = Field(min_length=1)
    seeds: int = Field(1, gt=0)  # train each variant under the first `seeds` entries of the top-level list
    profile_table: bool = False  # put parameters and FLOPs beside accuracy (S3 did)
    # variant -> the same architecture without dropout: recalibration's gain minus the twin's is
    # the part due to dropout rather than to stale BN statistics
    twins: dict[str, str] = {}
    cpu: Scale = Scale()  # the default run's setting, sized to reach each claim's regime on 2 cores
    paper: Scale = Scale()  # the published setting (`dvc exp run -S scale=paper`)
    sweep: Sweep | None = None  # train the variants that follow `dropout` at several rates, select on validation

    def scale(self, name: ScaleName) -> Scale:
        return getattr(self, name)

    @field_validator("variants")
    @classmethod
    def _distinct(cls, variants: list[str]) -> list[str]:
        return distinct(variants, "variant {!r} is listed twice; a study would compare it with itself")

    def _stranger(self, key: str, names: list[str]) -> None:
        """Refuse the first of `names` (what `key` lists) that is not one of this study's variants."""
        strangers = [name for name in names if name not in self.variants]
        if strangers:
            raise KeyProblem(key, f"{strangers[0]!r} is not one of this study's variants")

    @model_validator(mode="after")
    def _twins_are_its_variants(self) -> Study:
        self._stranger("twins", [name for pair in self.twins.items() for name in pair])
        return self

    @model_validator(mode="after")
    def _skips_are_its_variants(self) -> Study:
        for scale in SCALES:
            self._stranger(f"{scale}.skip", self.scale(scale).skip)
        return self

    @model_validator(mode="after")
    def _sweep_selects_its_variant(self) -> Study:
        if self.sweep is not None:
            self._stranger("sweep.select", [self.sweep.select])
        return self


class Run(Strict):
    """One (variant, seed) pair, or (variant, sweep rate, seed): one seed of the DVC stage
    `train@<variant>`, with its own files."""

    variant: str
    seed: int
    rate_key: str  # the params key the variant's rates come from (dvc.yaml's `p`), for DVC to track
    rate: float | None = None  # the sweep rate it trains at instead of its rate key's

    @property
    def label(self) -> str:
        """What the statistics, claims and tables call it: the variant, or <variant>_p80 for a sweep rate."""
        return self.variant if self.rate is None else f"{self.variant}_{rate_tag(self.rate)}"

    def path(self, folder: Path, suffix: str) -> Path:
        """This run's file in `folder` (models/, metrics/train/, ...): <folder>/<variant>/seed<seed><suffix>,
        or <folder>/<variant>/p80/seed<seed><suffix> for a sweep rate."""
        inside = folder / self.variant if self.rate is None else folder / self.variant / rate_tag(self.rate)
        return inside / f"seed{self.seed}{suffix}"
