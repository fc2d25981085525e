"""The typed records between stages: a dumped record is the JSON the stages always wrote, and a
reader's error names the file and the key."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from droplab import records
from droplab.errors import DroplabError

SCORES = {"loss": 0.2270271234, "acc1": 0.9291666666, "acc5": 0.99895833, "f1_macro": 0.929244}
ROW = {"epoch": 1, "train_loss": 2.2960123, "train_acc1": 0.1354166, "train_acc5": 0.528125, "val_loss": 2.2311594,
       "val_acc1": 0.192, "val_acc5": 0.596, "lr": 0.0016666667}
RESULT = {"best_epoch": 1, "train": SCORES, "val": SCORES,
          "test": {**SCORES, "f1_per_class": {"T-shirt/top": 0.7546641, "Trouser": 1.0}},
          "sizes": {"train": 1000, "val": 500, "test": 10000}, "history": [ROW]}
SPREAD = {"mean": 0.994470001, "std": 0.0436681, "min": 0.8852081, "max": 1.0812391}
LAYER = {"role": "block", "fed_by_dropout": "none", "gamma": SPREAD, "beta": SPREAD, "dropout_variance_ratio": 1.0,
         "dropout_variance_ratio_theory": None, "theory_gap": None, "stored_variance_shift": 1.00779912}
BN = {"bn_layers": 1, "layers": {"body.bn1": LAYER}, "dropout_variance_ratio_blocks": 1.0,
      "stored_variance_shift_blocks": 1.00779912,
      "recalibration": {"test_acc1_before": 0.78921, "test_acc1_after": 0.7912345, "test_acc1_gain": 0.0020245,
                        "test_loss_before": 0.8366931, "test_loss_after": 0.8012345}}
META = {"dataset": "fashion_mnist", "classes": ["a", "b"], "input_shape": [1, 28, 28],
        "mean": [0.2861647132853141], "std": [0.3531008270631292], "sizes": {"train": 50, "val": 10, "test": 10}}


def _rounded(data: object) -> object:
    """Every float of `data` rounded to 6 places by the json module's own walk (an independent rounding)."""
    return json.loads(json.dumps(data), parse_float=lambda text: round(float(text), 6))


def _text(data: object) -> str:
    return json.dumps(data, indent=2) + "\n"


@pytest.mark.parametrize("kind, raw", [(records.RunResult, RESULT), (records.BnReport, BN)])
def test_a_record_dumps_the_rounded_json_the_stages_wrote(kind, raw):
    assert records.dump(kind.model_validate(raw)) == _text(_rounded(raw))


def test_meta_keeps_its_numbers_unrounded():
    assert records.dump(records.Meta.model_validate(META)) == _text(META)


@pytest.mark.parametrize("kind, raw, load", [(records.RunResult, RESULT, records.load_result),
                                             (records.BnReport, BN, records.load_bn_report)])
def test_a_record_read_back_dumps_the_same_bytes(tmp_path, kind, raw, load):
    path = tmp_path / "seed0.json"
    path.write_text(records.dump(kind.model_validate(raw)))
    assert records.dump(load(path)) == path.read_text()


def test_rounding_is_idempotent():
    rng = random.Random(0)
    values = [rng.uniform(-10, 10) for _ in range(10_000)] + [rng.random() * 1e-7 for _ in range(1000)]
    for value in values:
        once = records.rounded(value)
        assert records.rounded(once) == once and once == float(f"{value:.6f}")


def test_nan_is_written_as_json_writes_it(tmp_path):
    raw = {**RESULT, "val": {**SCORES, "loss": math.nan}}
    text = records.dump(records.RunResult.model_validate(raw))
    assert '"loss": NaN' in text
    path = tmp_path / "seed0.json"
    path.write_text(text)
    assert math.isnan(records.load_result(path).val.loss)


def _problem(tmp_path: Path, load, content: str | None) -> str:
    path = tmp_path / "seed0.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DroplabError) as caught:
        load(path)
    return str(caught.value)


def test_result_reader_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "seed0.json"
    assert _problem(tmp_path, records.load_result, None) == f"{path}: not found; {records.RERUN_TRAIN}"
    assert _problem(tmp_path, records.load_result, "{not json").startswith(f"{path}: not valid JSON")
    broken = {**RESULT, "test": {**RESULT["test"], "acc1": "high"}}
    message = _problem(tmp_path, records.load_result, json.dumps(broken))
    assert message.startswith(f"{path}: test.acc1: Input should be a valid number") and "'high'" in message
    missing = {key: value for key, value in RESULT.items() if key != "sizes"}
    assert _problem(tmp_path, records.load_result, json.dumps(missing)).startswith(
        f"{path}: sizes: required key is missing")
    extra = {**RESULT, "history": [{**ROW, "lr_max": 0.1}]}
    assert _problem(tmp_path, records.load_result, json.dumps(extra)).startswith(
        f"{path}: history.0.lr_max: unknown key; allowed: epoch, train_loss")


def test_bn_report_reader_names_the_layer_and_the_key(tmp_path):
    broken = {**BN, "layers": {"body.bn1": {**LAYER, "gamma": {**SPREAD, "mean": None}}}}
    message = _problem(tmp_path, records.load_bn_report, json.dumps(broken))
    assert message.startswith(f"{tmp_path / 'seed0.json'}: layers.body.bn1.gamma.mean: Input should be a valid number")


@pytest.mark.parametrize("change, expected", [
    ({"classes": ["only"]}, "classes: List should have at least 2"),
    ({"input_shape": [28, 28]}, "input_shape: List should have at least 3"),
    ({"std": [0.0]}, "std.0: Input should be greater than 0"),
    ({"mean": [0.1, 0.2]}, "mean and std need one value per channel (1), found 2 and 1"),
    ({"sizes": {"train": "50"}}, "sizes.train: Input should be a valid integer"),
])
def test_meta_reader_names_the_key(tmp_path, change, expected):
    (tmp_path / "meta.json").write_text(json.dumps({**META, **change}))
    with pytest.raises(DroplabError, match="rerun the preprocess stage") as caught:
        records.load_meta(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'meta.json'}: {expected}")


def test_meta_reader_returns_the_model(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps(META))
    meta = records.load_meta(tmp_path)
    assert meta.classes == ["a", "b"] and meta.input_shape == [1, 28, 28] and meta.sizes["train"] == 50
