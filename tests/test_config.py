import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from droplab.config import ConfigError, load_params, parse_params
from droplab.yaml_file import read_yaml


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
        ("epochz", 3, ["epochz: unknown key", "allowed: scale, seeds, dataset, dropout"]),
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
        ("variants.resnet18_avg.p", "dropout", ["resnet18_avg.p -> dropout = 0.5, but this resnet builds no dropout",
                                                "head avg has no dropout; placement is none"]),
        ("variants.s1_resnet18_after_bn.p", "fixed_p.s3_head",
         ["gives rate 0.5 to dropout site 2 of 2, where this resnet builds no dropout (head avg has no dropout)"]),
        ("variants.s3_resnet18_dropout_head.p", "fixed_p.s1_blocks", ["site 1 of 2", "(placement is none)"]),
        ("variants.s2_mlp.block", ["linear", "relu"], ["this mlp builds no dropout (its block has no 'dropout'"]),
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


CIFAR_MIRROR = {"format": "cifar10_binary", "urls": ["https://mirror.example.org/cifar/"],
                "files": {"archive": {"name": "cifar-10-binary.tar.gz", "sha256": "c4" * 32}}}


def test_an_extra_dataset_is_pinned_in_params_and_selectable(real_params):
    raw = {**real_params, "dataset": "lab_cifar", "extra_datasets": {"lab_cifar": CIFAR_MIRROR}}
    spec = parse_params(raw).dataset_spec()
    assert spec.name == "lab_cifar" and spec.format == "cifar10_binary"
    assert spec.urls == ("https://mirror.example.org/cifar/",)
    assert spec.files["archive"].sha256 == "c4" * 32 and spec.files["archive"].name == "cifar-10-binary.tar.gz"


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"urls": ["http://mirror.example.org/"]}, "expected an https:// base URL"),
        ({"urls": ["https://mirror.example.org/file.tar.gz"]}, "ending in '/'"),
        ({"format": "idx"}, "format idx needs files for exactly: train_images"),
        ({"files": {"archive": {"name": "../x.tar.gz", "sha256": "c4" * 32}}}, "extra_datasets.lab_cifar.files"),
        ({"files": {"archive": {"name": "x.tar.gz", "sha256": "c4"}}}, "sha256"),
        ({"format": "png_folder"}, "extra_datasets.lab_cifar.format"),
    ],
)
def test_bad_extra_datasets_are_refused(real_params, change, expected):
    raw = {**real_params, "dataset": "lab_cifar", "extra_datasets": {"lab_cifar": {**CIFAR_MIRROR, **change}}}
    assert expected in _error(raw)


def test_plain_http_is_allowed_only_on_loopback(real_params):
    local = {**CIFAR_MIRROR, "urls": ["http://127.0.0.1:8000/"]}
    assert parse_params({**real_params, "extra_datasets": {"local": local}}).extra_datasets["local"].urls


def test_an_extra_dataset_cannot_shadow_a_built_in(real_params):
    assert "a built-in dataset has this name" in _error({**real_params, "extra_datasets": {"cifar10": CIFAR_MIRROR}})


def test_yaml_1_2_floats_are_numbers_and_other_scalars_keep_their_types(tmp_path):
    """`lr: 1e-3` is what every user writes; YAML 1.1 (PyYAML's default) reads it as a string."""
    path = tmp_path / "p.yaml"
    path.write_text("a: 1e-3\nb: 3\nc: 0.5\nd: .5\ne: 1.5E+2\nf: -2e5\ng: abc\nh: 1e\ni: true\nj: '1e-3'\n")
    assert read_yaml(path) == {"a": 0.001, "b": 3, "c": 0.5, "d": 0.5, "e": 150.0, "f": -200000.0, "g": "abc",
                               "h": "1e", "i": True, "j": "1e-3"}
    assert all(type(v) is float for v in (read_yaml(path)["a"], read_yaml(path)["e"]))


def test_lr_written_as_1e_minus_3_is_accepted(real_params, tmp_path):
    text = yaml.safe_dump(real_params).replace("lr: 0.001\n", "lr: 1e-3\n", 1)
    assert "lr: 1e-3" in text
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml").train.lr == 0.001


def test_every_name_that_becomes_a_path_is_a_plain_name(real_params):
    for bad in ("../x", "/abs/x", "a/b", ".hidden", "a.b", ""):
        for section in ("variants", "studies", "fixed_p", "extra_datasets"):
            raw = copy.deepcopy(real_params)
            raw[section] = {bad: next(iter(raw[section].values()), 0.0) if raw[section] else 0.0}
            with pytest.raises(ConfigError, match="may use only letters, digits"):
                parse_params(raw)


def test_a_variant_override_is_checked_against_the_top_level_train(real_params):
    raw = copy.deepcopy(real_params)
    raw["variants"]["s2_mlp"]["train"] = {"momentum": 0.5}  # s2_mlp trains with the top-level Adam
    expected = "variants.s2_mlp.train on top of studies.s2_mlp.cpu: momentum = 0.5 is SGD's"
    with pytest.raises(ConfigError, match=expected):
        parse_params(raw)


def test_a_sweep_trains_every_follower_of_dropout_at_each_rate_in_its_own_folder(real_params):
    params = parse_params(real_params)
    rates = real_params["studies"]["s2_mlp"]["sweep"]["rates"]
    assert params.sweep_rates("s2_mlp") == rates and params.sweep_rates("s2_mlp_no_bn") == rates
    assert params.sweep_rates("s2_mlp_no_dropout") is None and params.sweep_rates("s2_cnn") is None  # fixed / no sweep
    runs = params.variant_runs("s2_mlp")
    seeds = params.seeds_of("s2_mlp")
    assert [(run.rate, run.seed) for run in runs] == [(rate, seed) for rate in rates for seed in seeds]
    run = runs[-1]
    assert (run.label, run.path(Path("metrics/train"), ".json")) == (
        "s2_mlp_p90", Path(f"metrics/train/s2_mlp/p90/seed{run.seed}.json"))
    assert params.resolve("s2_mlp", 0.3).rates == [0.3] and params.resolve("s2_mlp", 0.3).run(0).label == "s2_mlp_p30"
    assert "s2_mlp_p30" in params.label_runs() and "s2_mlp" not in params.label_runs()


@pytest.mark.parametrize(
    "sweep, expected",
    [({"rates": [0.1, 0.25], "select": "s2_mlp"}, None),
     ({"rates": [0.1, 0.125], "select": "s2_mlp"}, "rate 0.125: expected a whole percent"),
     ({"rates": [0.1, 1.0], "select": "s2_mlp"}, "rate 1.0: expected a whole percent"),
     ({"rates": [0.1, 0.1], "select": "s2_mlp"}, "rate 0.1 appears more than once"),
     ({"rates": [0.5], "select": "s2_mlp"}, "studies.s2_mlp.sweep.rates"),
     ({"rates": [0.1, 0.2], "select": "s2_cnn"}, "studies.s2_mlp.sweep.select: 's2_cnn' is not one of this study's"),
     ({"rates": [0.1, 0.2], "select": "s2_mlp_no_dropout"}, "has p: fixed_p.none; the sweep trains only"),
     ({"rates": [0.1, 0.2], "select": "s2_mlp", "metric": "test.acc1"}, "studies.s2_mlp.sweep.metric")],
)
def test_a_sweep_is_checked(real_params, sweep, expected):
    raw = _with(real_params, "studies.s2_mlp.sweep", sweep)
    if expected is None:
        assert parse_params(raw).sweep_rates("s2_mlp") == sweep["rates"]
    else:
        assert expected in _error(raw)


def test_a_study_spec_key_applies_to_the_families_that_have_it(real_params):
    """S1's cpu scale narrows and resizes its ResNets; its linear baseline (an MLP) is untouched."""
    params = parse_params(real_params)
    assert params.spec("resnet18_avg").channels == [16, 32, 64, 128] and params.spec("resnet18_avg").resize == 33
    assert params.variants["resnet18_avg"].channels == [64, 128, 256, 512]  # the published width, at paper scale
    assert params.spec("s1_linear") == params.variants["s1_linear"]
    for key, value in (("p", "fixed_p.none"), ("train", {"lr": 10}), ("kernels", [3])):
        message = _error(_with(real_params, "studies.s1_placement.cpu.spec", {key: value}))
        assert f"studies.s1_placement.cpu.spec.{key}: not an architecture field of this study's variants" in message


def test_resolve_layers_train_top_level_then_study_scale_then_variant_and_spec_variant_then_study(real_params):
    raw = copy.deepcopy(real_params)
    raw["train"]["weight_decay"] = 0.125  # set only at the top level
    raw["studies"]["s2_mlp"]["cpu"]["train"].update(lr=0.5, epochs=4)  # the study's scale over the top level
    raw["variants"]["s2_mlp"]["train"] = {"lr": 0.25}  # the variant's own key over both
    raw["studies"]["s2_mlp"]["cpu"]["spec"] = {"hidden": [32]}  # the study's spec key over the variant's
    params = parse_params(raw)
    own, sibling = params.resolve("s2_mlp"), params.resolve("s2_mlp_no_bn")
    assert (own.train.lr, own.train.epochs, own.train.weight_decay) == (0.25, 4, 0.125)
    assert (sibling.train.lr, sibling.train.epochs, sibling.train.weight_decay) == (0.5, 4, 0.125)
    assert own.spec.hidden == [32] and own.spec.block == raw["variants"]["s2_mlp"]["block"]
    assert params.variants["s2_mlp"].hidden == [1024]  # the published spec is left as written
    assert own.lr_keys == "studies.s2_mlp.cpu.train.lr or variants.s2_mlp.train.lr"
    assert own.sizes == {"train": raw["studies"]["s2_mlp"]["cpu"].get("train_images"),
                         "val": raw["studies"]["s2_mlp"]["cpu"].get("val_images"),
                         "test": raw["studies"]["s2_mlp"]["cpu"].get("test_images")}


STUDY = "studies.s2_mlp"


@pytest.mark.parametrize("path, value, expected", [
    (f"{STUDY}.twins", {"s2_mlp": "s2_cnn"}, f"{STUDY}.twins: 's2_cnn' is not one of this study's variants"),
    (f"{STUDY}.twins", {"s2_mlp": "s2_mlp_no_bn"},
     f"{STUDY}.twins.s2_mlp: 's2_mlp_no_bn' has dropout; a twin has none"),
    (f"{STUDY}.cpu", {"skip": ["s2_cnn"], "skip_reason": "why"},
     f"{STUDY}.cpu.skip: 's2_cnn' is not one of this study's variants"),
    (f"{STUDY}.sweep.select", "s2_cnn", f"{STUDY}.sweep.select: 's2_cnn' is not one of this study's variants"),
    ("studies.s4_d2l.variants", ["s4_linear", "ghost"], "studies.s4_d2l.variants: 'ghost' is not in variants"),
    (f"{STUDY}.paper.dataset", "imagenet", f"{STUDY}.paper.dataset: unknown dataset 'imagenet'; allowed: "),
    ("variants.extra", {"model": "mlp", "p": "dropout", "hidden": [8]}, "variants.extra is in no study"),
    ("skipped_variants", ["s2_mlp"], "skipped_variants: 's2_mlp' is also in variants; list it in one place"),
])
def test_each_check_names_the_exact_key_it_checks(real_params, path, value, expected):
    """Checks that live on a study (twins, skip, sweep.select) still name the key, not the study."""
    assert f"\n  {expected}" in _error(_with(real_params, path, value))


def test_importing_the_config_imports_neither_torch_nor_timm():
    """params.yaml validates (`droplab validate`, `droplab runs`) without paying for torch."""
    code = "import sys, droplab.config; print(sorted({'torch', 'timm'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


NEW_FAMILY = '''
import json, sys
from typing import Literal
from droplab.models.families import register_family
from droplab.models.spec import ModelSpec

class ToySpec(ModelSpec):
    size_fields = ("width",)
    model: Literal["toy"]
    width: int = 4

    def dropout_sites(self) -> int:
        return 1

@register_family(ToySpec)
def build_toy(spec, rates, input_shape, num_classes):
    from torch import nn
    return nn.Sequential(nn.Flatten(), nn.Dropout(rates[0]), nn.Linear(28 * 28, num_classes))

from droplab.config import parse_params
from droplab.models.registry import create_model
raw = json.loads(sys.stdin.read())
raw["variants"]["s2_mlp_linear"] = {"model": "toy", "p": "dropout", "width": 8}
params = parse_params(raw)
config = params.resolve("s2_mlp_linear")
model = create_model(config.spec, config.rates, (1, 28, 28), 10)
print(type(config.spec).__name__, config.spec.width, model[1].p)
raw["variants"]["s2_mlp_linear"]["model"] = "vgg"
try:
    parse_params(raw)
except Exception as exc:
    print(str(exc).splitlines()[1])
'''


def test_a_new_family_is_one_spec_and_one_registered_builder_with_no_edit_in_the_config(real_params):
    done = subprocess.run([sys.executable, "-c", NEW_FAMILY], input=json.dumps(real_params), capture_output=True,
                          text=True, check=True)
    built, refused = done.stdout.splitlines()
    assert built == f"ToyVariant 8 {real_params['dropout']}"
    assert "'vgg'" in refused and "'mlp', 'cnn', 'lenet5', 'resnet', 'toy'" in refused


@pytest.mark.parametrize("path, value, expected", [
    ("train.amp", "yes", "train.amp: Input should be a valid boolean or 'auto' (got 'yes')"),
    ("studies.s2_mlp.cpu.train.channels_last", 3,
     "studies.s2_mlp.cpu.train.channels_last: Input should be a valid boolean or 'auto' (got 3)"),
    ("fixed_p.none", "x", "fixed_p.none.0: Input should be a valid number (got 'x')"),
])
def test_a_value_no_member_of_a_union_accepts_is_named_by_its_key_once(tiny_params, path, value, expected):
    """Not once per member under the member's label ('train.amp.bool', "train.amp.literal['auto']")."""
    *parents, key = path.split(".")
    node = tiny_params
    for name in parents:
        node = node.setdefault(name, {})
    node[key] = value
    with pytest.raises(ConfigError) as caught:
        parse_params(tiny_params)
    assert str(caught.value).splitlines()[1:] == [f"  {expected}"]


@pytest.mark.parametrize("name", ["..", ".hidden", "x.tar.gz\n", "a/b.tar.gz", "a\\b.tar.gz"])
def test_a_pinned_file_name_stays_in_its_folder(real_params, name):
    """`..` passed the old `^[^/\\\\]+$` and named the dataset's folder itself; a final newline passes any `$`."""
    files = {"archive": {"name": name, "sha256": "c4" * 32}}
    raw = {**real_params, "dataset": "lab_cifar", "extra_datasets": {"lab_cifar": {**CIFAR_MIRROR, "files": files}}}
    assert f"extra_datasets.lab_cifar.files.archive.name: file name {name!r} may use only letters" in _error(raw)
