import json
from collections import OrderedDict

import pytest
import torch
from torch import nn

from droplab.analysis.analyze import analyze_run
from droplab.analysis.bn_analysis import (
    direct_dropout_rates,
    dropout_variance_ratio_theory,
    input_moments,
    learned_affine,
    recalibrate,
    variance_shifts,
)
from droplab.models.blocks import Dropout
from droplab.models.lenet import LeNet5
from droplab.models.mlp import MLP
from droplab.models.norm import DropoutBatchNorm2d
from droplab.models.resnet import ResNet
from droplab.training.device_data import BatchTransform, Split, eval_batches
from droplab.training.train import Context, evaluate

# Data is drawn from another seed than the analysis' dropout masks (seed 0): drawn from the
# same stream, the masks would correlate with the data.
DATA_SEED = 1234


def _batches(data: torch.Tensor, size: int = 500):
    return lambda: (data[i : i + size] for i in range(0, len(data), size))


def _collect_running_stats(model: nn.Module, data: torch.Tensor) -> None:
    """Train-mode passes (dropout on) with a cumulative average, as training would leave them."""
    for _, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    model.train()
    with torch.no_grad():
        for x in _batches(data)():
            model(x)


def _expected_ratio(c: torch.Tensor, v: torch.Tensor, p: float) -> torch.Tensor:
    """Var(x m / (1 - p)) / Var(x), m ~ Bernoulli(1 - p), for x of mean c and variance v."""
    second_moment = (v + c**2) / (1 - p)
    return (second_moment - c**2) / v


C = torch.tensor([0.0, 1.0, -2.0, 3.0], dtype=torch.float64)  # per-channel mean of the BN input
V = torch.tensor([1.0, 0.25, 4.0, 1.0], dtype=torch.float64)  # and its variance


@pytest.mark.parametrize("p", [0.2, 0.5])
@pytest.mark.parametrize("dims, dropout", [(1, Dropout), (2, nn.Dropout)])
def test_dropout_feeding_bn_shifts_each_channel_as_theory_says(p: float, dims: int, dropout: type):
    torch.manual_seed(DATA_SEED)
    if dims == 1:
        data = (C + V.sqrt() * torch.randn(200_000, 4, dtype=torch.float64)).float()
        model = nn.Sequential(dropout(p), nn.BatchNorm1d(4))
        axes: tuple[int, ...] = (0,)
    else:
        noise = torch.randn(4000, 4, 8, 8, dtype=torch.float64)
        data = (C.view(1, 4, 1, 1) + V.sqrt().view(1, 4, 1, 1) * noise).float()
        model = nn.Sequential(dropout(p), nn.BatchNorm2d(4))
        axes = (0, 2, 3)
    assert direct_dropout_rates(model) == {"1": p}

    # The dropout-off moments are those of the data itself.
    off = input_moments(model, _batches(data), dropout=False)["1"]
    sample_c, sample_v = data.double().mean(axes), data.double().var(axes)
    assert torch.allclose(off.mean, sample_c, rtol=1e-9, atol=1e-9)
    assert torch.allclose(off.var, sample_v, rtol=1e-9)
    # Dropout on: each channel's variance grows as (v + p c^2) / ((1 - p) v).
    on = input_moments(model, _batches(data), dropout=True, seed=0)["1"]
    assert torch.allclose(on.var / off.var, _expected_ratio(C, V, p), rtol=0.02)
    dropped = data.double() * (torch.rand_like(data.double()) >= p) / (1 - p)  # an independent mask
    assert torch.allclose(on.mean, sample_c, atol=0.02)
    assert torch.allclose(on.var, dropped.var(axes), rtol=0.03)

    layer = variance_shifts(model, _batches(data), seed=0)["1"]
    assert (layer.role, layer.fed_by_dropout) == ("block", "direct")
    assert layer.dropout_variance_ratio == pytest.approx(float(_expected_ratio(C, V, p).mean()), rel=0.02)
    assert layer.dropout_variance_ratio == pytest.approx(float((on.var / off.var).mean()), rel=1e-12)
    theory = float(((sample_v + p * sample_c**2) / ((1 - p) * sample_v)).mean())
    assert layer.dropout_variance_ratio_theory == pytest.approx(theory, rel=1e-9)
    assert layer.theory_gap == pytest.approx(layer.dropout_variance_ratio / theory - 1, abs=1e-9)
    assert abs(layer.theory_gap) < 0.02
    # A fresh BN stores running_var = 1: the stored shift against the data's variance.
    stored = torch.maximum(1 / sample_v, sample_v).mean()
    assert layer.stored_variance_shift == pytest.approx(float(stored), rel=1e-9)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.7])
def test_at_zero_mean_dropout_right_before_bn_shifts_variance_by_one_over_one_minus_p(p: float):
    torch.manual_seed(DATA_SEED)
    data = torch.randn(40_000, 16)
    model = nn.Sequential(nn.Dropout(p), nn.BatchNorm1d(16))
    _collect_running_stats(model, data)
    layer = variance_shifts(model, _batches(data))["1"]
    assert layer.dropout_variance_ratio == pytest.approx(1 / (1 - p), rel=0.02)
    assert layer.dropout_variance_ratio_theory == pytest.approx(1 / (1 - p), rel=0.002)
    # The stored statistics were collected with dropout on: inference suffers the same shift.
    assert layer.stored_variance_shift == pytest.approx(1 / (1 - p), rel=0.03)


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_droplabs_own_dropout_bn_shows_the_shift_and_recalibrates(p: float):
    """The same theory through DropoutBatchNorm2d(before_bn): the BN input is its inner dropout's
    output, and recalibration must switch that dropout off though it sits inside a BN in train mode."""
    torch.manual_seed(DATA_SEED)
    data = torch.randn(4000, 8, 3, 3) * 0.5 + 1.0
    model = nn.Sequential(DropoutBatchNorm2d(8, p=p, placement="before_bn"))
    _collect_running_stats(model, data)
    layer = variance_shifts(model, _batches(data))["0"]
    expected = (0.25 + p * 1.0) / ((1 - p) * 0.25)
    assert layer.fed_by_dropout == "direct"
    assert layer.dropout_variance_ratio == pytest.approx(expected, rel=0.03)
    assert abs(layer.theory_gap) < 0.02
    assert layer.stored_variance_shift == pytest.approx(expected, rel=0.05)
    fixed = recalibrate(model, _batches(data))
    assert variance_shifts(fixed, _batches(data))["0"].stored_variance_shift == pytest.approx(1.0, abs=0.01)
    # after_bn: the dropout acts on the BN's output, so the BN's own input is untouched.
    after = nn.Sequential(DropoutBatchNorm2d(8, p=p, placement="after_bn"))
    layer = variance_shifts(after, _batches(data))["0"]
    assert (layer.fed_by_dropout, layer.dropout_variance_ratio, layer.theory_gap) == ("none", 1.0, None)


def test_without_dropout_every_ratio_is_exactly_one():
    torch.manual_seed(DATA_SEED)
    models = {
        "plain": nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                               nn.Linear(4 * 26 * 26, 5), nn.BatchNorm1d(5)),
        "mlp": MLP(input_shape=(1, 28, 28), num_classes=10, hidden=[16, 16], block=["linear", "bn", "relu", "dropout"],
                   rates=[0.0, 0.0]),
        "lenet": LeNet5(input_shape=(1, 28, 28), num_classes=10, bn=True, input_bn=True, resize=32, rates=[0.0] * 5),
    }
    data = torch.randn(300, 1, 28, 28) * 2 + 1
    for kind, model in models.items():
        _collect_running_stats(model, data)
        shifts = variance_shifts(model, _batches(data, 128))
        assert len(shifts) >= 2, kind
        for name, layer in shifts.items():
            assert layer.dropout_variance_ratio == 1.0, (kind, name)
            assert layer.fed_by_dropout == "none", (kind, name)
            assert layer.dropout_variance_ratio_theory is None and layer.theory_gap is None
    roles = {name: layer.role for name, layer in variance_shifts(models["lenet"], _batches(data, 128)).items()}
    assert roles == {"input_bn": "input", "features.conv1.bn": "block", "features.conv2.bn": "block"}


def test_how_dropout_reaches_each_bn_in_an_mlp():
    torch.manual_seed(DATA_SEED)
    data = torch.randn(20_000, 8) + 0.5

    def shifts(block: list[str]):
        model = MLP(input_shape=(8,), num_classes=3, hidden=[16, 16, 16], block=block, rates=[0.5] * 3)
        return {name: layer for name, layer in variance_shifts(model, _batches(data, 1000)).items()}

    # Layers before the first dropout see the same tensors in both passes: exactly 1.
    after = shifts(["linear", "bn", "relu", "dropout"])
    assert after["hidden.fc1.bn"].fed_by_dropout == "none" and after["hidden.fc1.bn"].dropout_variance_ratio == 1.0
    for name in ("hidden.fc2.bn", "hidden.fc3.bn"):
        assert after[name].fed_by_dropout == "upstream" and after[name].dropout_variance_ratio > 1.0
        assert after[name].dropout_variance_ratio_theory is None
    # Dropout right before BN, also across two nested blocks (fc1 ends with dropout, fc2 starts with BN).
    before = shifts(["linear", "dropout", "bn", "relu"])
    nested = nn.Sequential(OrderedDict(
        fc1=nn.Sequential(nn.BatchNorm1d(8), nn.Linear(8, 16), nn.ReLU(), Dropout(0.5)),
        fc2=nn.Sequential(nn.BatchNorm1d(16), nn.Linear(16, 16), nn.ReLU(), Dropout(0.5))))
    across = variance_shifts(nested, _batches(data, 1000))
    assert across["fc1.0"].fed_by_dropout == "none" and across["fc1.0"].dropout_variance_ratio == 1.0
    for layer in [*before.values(), across["fc2.0"]]:
        assert layer.fed_by_dropout == "direct"
        assert abs(layer.theory_gap) < 0.03
    # fc2's dropout gets an input that fc1's dropout already widened: theory from the dropout-off
    # moments alone misses that; the theory field takes the dropout's own input in the on pass.
    model = MLP(input_shape=(8,), num_classes=3, hidden=[16, 16], block=["linear", "dropout", "bn", "relu"],
                rates=[0.5, 0.5])
    off = input_moments(model, _batches(data, 1000), dropout=False)["hidden.fc2.bn"]
    layer = variance_shifts(model, _batches(data, 1000))["hidden.fc2.bn"]
    assert layer.dropout_variance_ratio / dropout_variance_ratio_theory(off, 0.5) - 1 > 0.2
    assert abs(layer.theory_gap) < 0.03


def test_the_measurement_is_seeded_and_leaves_the_model_alone():
    torch.manual_seed(DATA_SEED)
    data = torch.randn(2000, 8)
    model = nn.Sequential(nn.Linear(8, 8), Dropout(0.5), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8),
                          nn.BatchNorm1d(8))
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    first = variance_shifts(model, _batches(data), seed=7)
    after_call = torch.rand(1)
    torch.manual_seed(123)
    assert torch.equal(after_call, torch.rand(1))  # the caller's random state is untouched
    assert variance_shifts(model, _batches(data), seed=7) == first
    assert variance_shifts(model, _batches(data), seed=8)["2"] != first["2"]
    assert first["2"].fed_by_dropout == "direct" and first["5"].fed_by_dropout == "upstream"
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def _sgd_steps(model: nn.Module, steps: int, batch: int, shape: tuple[int, ...]) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _resnet(placement: str) -> ResNet:
    return ResNet(input_shape=(1, 33, 33), num_classes=10, arch="resnet18", placement=placement, stem="imagenet",
                  head="avg", resize=None, rates=[0.5, 0.0])


def test_a_trained_resnet_matches_theory_where_dropout_feeds_bn_directly():
    torch.manual_seed(DATA_SEED)
    model = _resnet("before_bn")
    _sgd_steps(model, steps=2, batch=16, shape=(1, 33, 33))
    data = torch.randn(256, 1, 33, 33)
    shifts = variance_shifts(model, _batches(data, 128), seed=0)
    roles = {name: layer.role for name, layer in shifts.items()}
    assert roles["body.bn1"] == "stem"
    assert {name for name, role in roles.items() if role == "shortcut"} == {
        f"body.layer{i}.0.downsample.1" for i in (2, 3, 4)}
    stem = shifts["body.bn1"]
    assert (stem.fed_by_dropout, stem.dropout_variance_ratio) == ("none", 1.0)
    blocks = {name: layer for name, layer in shifts.items() if layer.role == "block"}
    assert len(blocks) == 16
    for name, layer in blocks.items():
        assert layer.fed_by_dropout == "direct", name
        assert abs(layer.theory_gap) < 0.05, (name, layer)
        assert layer.dropout_variance_ratio > 1.5, name  # at least 1 / (1 - p) = 2, less sampling noise
    for name in ("body.layer2.0.downsample.1", "body.layer3.0.downsample.1"):
        assert shifts[name].fed_by_dropout == "upstream" and shifts[name].theory_gap is None

    # after_bn: dropout acts on bn1's output; bn2 gets it through ReLU and conv2.
    torch.manual_seed(DATA_SEED)
    model = _resnet("after_bn")
    _sgd_steps(model, steps=1, batch=16, shape=(1, 33, 33))
    shifts = variance_shifts(model, _batches(data, 128), seed=0)
    first = shifts["body.layer1.0.bn1"]  # fed by the stem: no dropout upstream
    assert (first.fed_by_dropout, first.dropout_variance_ratio) == ("none", 1.0)
    second = [layer for name, layer in shifts.items() if name.endswith(".bn2")]
    assert len(second) == 8
    for layer in second:
        assert layer.fed_by_dropout == "upstream"
        assert layer.dropout_variance_ratio is not None and layer.dropout_variance_ratio > 0
        assert layer.dropout_variance_ratio_theory is None and layer.theory_gap is None


def test_recalibration_keeps_weights_and_removes_the_shift():
    torch.manual_seed(DATA_SEED)
    data = torch.randn(6000, 8)
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        model[2].weight.uniform_(0.5, 1.5)
        model.train()
        for x in _batches(data)():
            model(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fixed = recalibrate(model, _batches(data))
    for key, value in model.state_dict().items():  # the trained model is untouched
        assert torch.equal(value, before[key]), key
    for key, value in fixed.state_dict().items():  # the copy differs only in BN statistics
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(value, before[key]), key
    assert not torch.allclose(fixed[2].running_var, model[2].running_var)
    # The stored statistics carried dropout's inflated variance; recalibrated, they match eval mode.
    assert variance_shifts(model, _batches(data))["2"].stored_variance_shift > 1.5
    assert variance_shifts(fixed, _batches(data))["2"].stored_variance_shift == pytest.approx(1.0, abs=0.01)
    # The architecture's train/eval mismatch itself is unchanged: dropout still feeds the BN.
    assert variance_shifts(fixed, _batches(data))["2"].dropout_variance_ratio > 1.5
    assert not fixed.training


def test_learned_affine_reads_gamma_and_beta():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.BatchNorm1d(2, affine=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        model[0].bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    assert learned_affine(model) == {"0": {"gamma": [1.0, 2.0, 3.0], "beta": [-1.0, 0.0, 1.0]}}


LAYER_KEYS = {"role", "fed_by_dropout", "gamma", "beta", "dropout_variance_ratio", "dropout_variance_ratio_theory",
              "theory_gap", "stored_variance_shift"}


def _splits(n_train: int) -> dict[str, Split]:
    generator = torch.Generator().manual_seed(0)
    splits = {}
    for name, n in (("train", n_train), ("val", 40), ("test", 40)):
        labels = torch.arange(n) % 10
        images = torch.randint(0, 60, (n, 1, 28, 28), generator=generator) + labels.view(-1, 1, 1, 1) * 19
        splits[name] = Split(images.to(torch.uint8), labels)
    return splits


def _context() -> tuple[BatchTransform, Context]:
    transform = BatchTransform([0.4], [0.3], True, torch.device("cpu"))
    return transform, Context(transform, 10, torch.device("cpu"), autocast=False)


def test_a_pass_whose_last_batch_would_hold_one_image_gives_it_to_the_batch_before():
    """BN in train mode (recalibration) cannot take a batch of 1: with 120 training images and
    batches of 119, the analysis used to fail after training had succeeded."""
    split = Split(torch.zeros(120, 1, 2, 2, dtype=torch.uint8), torch.arange(120))
    assert [len(labels) for _, labels in eval_batches(split, 119)] == [120]
    assert [len(labels) for _, labels in eval_batches(split, 50)] == [50, 50, 20]
    assert torch.equal(torch.cat([labels for _, labels in eval_batches(split, 119)]), split.labels)

    torch.manual_seed(DATA_SEED)
    model = MLP(input_shape=(1, 28, 28), num_classes=10, hidden=[32], block=["linear", "bn", "relu", "dropout"],
                rates=[0.5])
    transform, ctx = _context()
    splits = _splits(120)
    test = evaluate(model, splits["test"], 119, ctx)
    result = analyze_run(model, splits, transform, ctx, train_images=None, eval_batch_size=119, seed=0,
                         test=test).model_dump()
    assert result["bn_layers"] == 1 and result["recalibration"] is not None


def test_analyze_run_reports_every_bn_and_averages_the_block_layers():
    torch.manual_seed(DATA_SEED)
    model = LeNet5(input_shape=(1, 28, 28), num_classes=10, bn=True, input_bn=True, resize=32, rates=[0.3] * 5)
    splits = _splits(200)
    transform, ctx = _context()
    _collect_running_stats(model, transform(splits["train"].images))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    test = evaluate(model, splits["test"], 64, ctx)  # what training measured, which the analysis reuses
    result = analyze_run(model, splits, transform, ctx, train_images=150, eval_batch_size=64, seed=0,
                         test=test).model_dump()
    json.dumps(result, allow_nan=False)
    assert set(result) == {"bn_layers", "layers", "dropout_variance_ratio_blocks", "stored_variance_shift_blocks",
                           "recalibration"}
    assert set(result["recalibration"]) == {"test_acc1_before", "test_acc1_after", "test_acc1_gain",
                                            "test_loss_before", "test_loss_after"}
    assert (result["recalibration"]["test_acc1_before"], result["recalibration"]["test_loss_before"]) == (
        round(test["acc1"], 6), round(test["loss"], 6))
    layers = result["layers"]
    assert result["bn_layers"] == 3 and list(layers) == ["input_bn", "features.conv1.bn", "features.conv2.bn"]
    assert all(set(layer) == LAYER_KEYS for layer in layers.values())
    assert set(layers["input_bn"]["gamma"]) == {"mean", "std", "min", "max"}
    # input_bn sees the raw input (input dropout comes after it); conv1's BN follows conv1 directly,
    # conv2's gets conv1's pooled, dropped output through conv2.
    assert (layers["input_bn"]["role"], layers["input_bn"]["fed_by_dropout"]) == ("input", "none")
    assert layers["input_bn"]["dropout_variance_ratio"] == 1.0
    assert [layers[f"features.conv{i}.bn"]["fed_by_dropout"] for i in (1, 2)] == ["upstream", "upstream"]
    assert layers["features.conv2.bn"]["dropout_variance_ratio_theory"] is None
    blocks = [layers[f"features.conv{i}.bn"] for i in (1, 2)]
    for key in ("dropout_variance_ratio", "stored_variance_shift"):
        mean = sum(layer[key] for layer in blocks) / 2
        assert result[f"{key}_blocks"] == pytest.approx(mean, abs=2e-6)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # deterministic: the same seed gives the same numbers
    assert analyze_run(model, splits, transform, ctx, train_images=150, eval_batch_size=64, seed=0,
                       test=test).model_dump() == result

    plain = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    empty = analyze_run(plain, splits, transform, ctx, train_images=None, eval_batch_size=64, seed=0,
                        test=evaluate(plain, splits["test"], 64, ctx)).model_dump()
    assert empty == {"bn_layers": 0, "layers": {}, "dropout_variance_ratio_blocks": None,
                     "stored_variance_shift_blocks": None, "recalibration": None}
