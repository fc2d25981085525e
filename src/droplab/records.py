"""The typed records stages hand each other through files: a seed's result (metrics/train), its BN
report (metrics/bn) and the prepared data's meta (data/prepared/meta.json).

The writer builds the record and `dump`s it; every reader loads it through `load_result`,
`load_bn_report` or `load_meta`, so a file that is missing, not JSON or of another shape stops
with one line naming the file, the key and what to rerun, not a KeyError deep in a stage. The
numbers are rounded to DECIMALS places by the record itself, so no writer rounds on its own.
Field order is the files' key order: a dumped record is byte for byte what the stages wrote
before the records existed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, Field, ValidationError, model_validator

from droplab.atomic import json_text, regular_file
from droplab.errors import DroplabError
from droplab.schema import Strict, UniqueNames, problem_lines

DECIMALS = 6  # the places every number of a result and a BN report keeps


def rounded(value: float) -> float:
    """`value` to DECIMALS places: idempotent, so a record read back and dumped keeps its bytes."""
    return round(value, DECIMALS)


# A measured value may be NaN (a diverged run's loss, which the statistics name rather than average);
# every input and setting droplab reads (Strict's rule: params, meta.json, specs) is finite.
Rounded = Annotated[float, Field(allow_inf_nan=True), AfterValidator(rounded)]


class Scores(Strict):
    """One split's metrics at one epoch (training.metrics.Meter.summary)."""

    loss: Rounded
    acc1: Rounded
    acc5: Rounded
    f1_macro: Rounded


class PerClassScores(Scores):
    """The test split's metrics with the best epoch's weights, and each class's F1 by class name."""

    f1_per_class: dict[str, Rounded]


class EpochRow(Strict):
    """One epoch of a run's history: the curves the aggregate averages and judges regimes on."""

    epoch: int
    train_loss: Rounded
    train_acc1: Rounded
    train_acc5: Rounded
    val_loss: Rounded
    val_acc1: Rounded
    val_acc5: Rounded
    lr: Rounded  # the lr of the epoch's first step


class RunResult(Strict):
    """metrics/train/<variant>/[p<rate>/]seed<k>.json: a seed's best epoch (highest val acc1), the
    metrics there, the split sizes it trained on and every epoch's row."""

    best_epoch: int
    train: Scores
    val: Scores
    test: PerClassScores
    sizes: dict[str, int]
    history: list[EpochRow]


class Spread(Strict):
    """How one BN parameter's values spread across the layer's channels."""

    mean: Rounded
    std: Rounded
    min: Rounded
    max: Rounded


class BnLayer(Strict):
    """One BN layer's learned affine and the variance shift dropout causes at its input (None
    where the analysis has no theory for it)."""

    role: str
    fed_by_dropout: str
    gamma: Spread
    beta: Spread
    dropout_variance_ratio: Rounded | None
    dropout_variance_ratio_theory: Rounded | None
    theory_gap: Rounded | None
    stored_variance_shift: Rounded | None


class Recalibration(Strict):
    """The test split before and after re-estimating the BN statistics without dropout."""

    test_acc1_before: Rounded
    test_acc1_after: Rounded
    test_acc1_gain: Rounded
    test_loss_before: Rounded
    test_loss_after: Rounded


class BnReport(Strict):
    """metrics/bn/<variant>/[p<rate>/]seed<k>.json: the BN analysis of a seed's best weights; the
    block means and the recalibration are None for a model without BN (or without blocks)."""

    bn_layers: int
    layers: dict[str, BnLayer]
    dropout_variance_ratio_blocks: Rounded | None
    stored_variance_shift_blocks: Rounded | None
    recalibration: Recalibration | None


class Meta(Strict):
    """data/prepared/meta.json: what the preprocess stage prepared, which every later stage reads
    instead of knowing the dataset."""

    dataset: str
    classes: UniqueNames = Field(min_length=2)
    input_shape: list[Annotated[int, Field(gt=0)]] = Field(min_length=3, max_length=3)  # C, H, W
    mean: list[float]
    std: list[Annotated[float, Field(gt=0)]]
    sizes: dict[str, Annotated[int, Field(ge=0)]]

    @model_validator(mode="after")
    def _one_per_channel(self) -> Meta:
        if not len(self.mean) == len(self.std) == self.input_shape[0]:
            raise ValueError(f"mean and std need one value per channel ({self.input_shape[0]}), "
                             f"found {len(self.mean)} and {len(self.std)}")
        return self


def dump(record: BaseModel) -> str:
    """The file text of `record`: indented JSON, keys in field order (NaN stays NaN, as json writes it)."""
    return json_text(record.model_dump())


Record = TypeVar("Record", bound=BaseModel)
RERUN_PREPROCESS = "rerun the preprocess stage (dvc repro preprocess) to rewrite it"
RERUN_TRAIN = "rerun its train stage (dvc repro train@<variant>) to rewrite it"


def load(path: Path, kind: type[Record], remedy: str) -> Record:
    """The record of type `kind` in `path`, or one DroplabError naming the file, the first wrong
    key and `remedy`."""
    try:
        return kind.model_validate(json.loads(regular_file(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise DroplabError(f"{path}: not found; {remedy}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DroplabError(f"{path}: not valid JSON ({exc}); {remedy}") from None
    except RecursionError:  # json refuses nesting deeper than Python's stack: no record nests so
        raise DroplabError(f"{path}: nested too deeply to be a droplab record; {remedy}") from None
    except ValidationError as exc:
        raise DroplabError(f"{path}: {problem_lines(exc.errors(), kind)[0]}; {remedy}") from None


def load_result(path: Path) -> RunResult:
    """A seed's metrics/train JSON, checked."""
    return load(path, RunResult, RERUN_TRAIN)


def load_bn_report(path: Path) -> BnReport:
    """A seed's metrics/bn JSON, checked."""
    return load(path, BnReport, RERUN_TRAIN)


def load_meta(prepared: Path) -> Meta:
    """The checked meta.json of the prepared-data folder `prepared`."""
    return load(prepared / "meta.json", Meta, RERUN_PREPROCESS)
