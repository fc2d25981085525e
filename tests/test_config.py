import copy

import pytest

from droplab.config import ConfigError, parse_params


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    return str(info.value)


def test_the_real_params_file_is_valid(real_params):
    params = parse_params(real_params)
    assert params.rates("s2_cnn") == [params.dropout]
    assert params.rates("s4_mlp_p2_p5") == [0.2, 0.5]
    assert params.train_config("s4_mlp_p2_p5").optimizer == "sgd"
    assert params.train_config("s2_cnn").optimizer == real_params["train"]["optimizer"]


def _with(raw: dict, path: str, value) -> dict:
    raw = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("epochz", 3, ["epochz: unknown key", "allowed: seed, dataset, dropout"]),
        ("variants.s2_cnn.blok", ["conv"], ["variants.s2_cnn.blok: unknown key", "allowed: p, normalize, train"]),
        ("train.epochs", "three", ["train.epochs:", "valid integer", "'three'"]),
        ("dropout", 1.0, ["dropout:", "less than 1"]),
        ("dropout", -0.1, ["dropout:", "greater than or equal to 0"]),
        ("fixed_p.none", 1.0, ["fixed_p.none = 1.0: a dropout rate must lie in [0, 1)"]),
        ("fixed_p.unused", -0.1, ["fixed_p.unused = -0.1"]),
        ("train.epochs", "3", ["train.epochs:", "valid integer", "'3'"]),
        ("variants.s2_mlp.train", {"schedule": {"name": "steps"}}, ["variants.s2_mlp.train.schedule.name"]),
        ("variants.s2_cnn.model", "vgg", ["variants.s2_cnn", "'vgg'", "'mlp', 'cnn', 'lenet5'"]),
        ("dataset", "imagenet21k", ["dataset: unknown dataset 'imagenet21k'", "allowed: fashion_mnist"]),
        ("variants.s2_cnn.p", "droput", ["'droput' is not a rate key", "allowed: dropout, fixed_p.none"]),
        ("variants.s2_cnn.block", ["conv", "bn", "relu", "drop", "pool"], ["variants.s2_cnn.block", "'drop'"]),
        ("variants.s2_cnn.block", ["bn", "relu"], ["variants.s2_cnn.block", "must contain 'conv'"]),
        ("variants.s2_mlp.train", {"lr": -1}, ["variants.s2_mlp.train.lr", "greater than 0"]),
        ("fixed_p.s4_p1_low", [0.1, 0.2, 0.3], ["gives 3 rates", "give 1 (for all) or 2"]),
        ("fixed_p", {"a.b": 0.1}, ["fixed_p: ", "'a.b'"]),
    ],
)
def test_bad_params_name_the_key_and_what_is_allowed(real_params, path, value, expected):
    message = _error(_with(real_params, path, value))
    assert message.startswith("params.yaml is invalid")
    for fragment in expected:
        assert fragment in message


def test_missing_key_is_named(real_params):
    raw = copy.deepcopy(real_params)
    del raw["train"]["lr"]
    assert "train.lr: required key is missing" in _error(raw)


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_params(["not", "a", "mapping"])


def test_variant_overrides_are_validated_and_typed(real_params):
    real_params["variants"]["s2_mlp"]["train"] = {"schedule": {"name": "step", "milestones": [1]}, "epochs": 7}
    cfg = parse_params(real_params).train_config("s2_mlp")
    assert cfg.schedule.name == "step" and cfg.schedule.milestones == [1] and cfg.epochs == 7
    assert cfg.lr == real_params["train"]["lr"]
