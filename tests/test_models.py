"""Architectures: shapes, parameter counts against hand formulas, and the real layer order."""

import pytest
import torch
from torch import nn

from droplab.config import parse_params
from droplab.models.registry import create_model


def _build(real_params: dict, variant: str, input_shape=(1, 28, 28), classes: int = 10) -> nn.Module:
    params = parse_params(real_params)
    return create_model(params.variants[variant], params.rates(variant), input_shape, classes)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _call_order(model: nn.Module, input_shape) -> list[str]:
    """Leaf module types in the order a forward pass calls them, seen by forward hooks."""
    calls: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, *_: calls.append(type(mod).__name__))
             for m in model.modules() if not list(m.children())]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(2, *input_shape))
    for hook in hooks:
        hook.remove()
    return calls


def linear(i: int, o: int) -> int:
    return i * o + o


def conv(i: int, o: int, k: int) -> int:
    return i * o * k * k + o


S2_MLP = linear(784, 1024) + 2 * 1024 + linear(1024, 10)
S4_MLP = linear(784, 256) + linear(256, 256) + linear(256, 10)
# 28 -> conv 28 -> pool(2, 2, pad 1) 15 -> conv 15 -> pool 8: 128*8*8 features; BN adds 2 per channel
S2_CNN = conv(1, 64, 3) + 2 * 64 + conv(64, 128, 5) + 2 * 128 + linear(128 * 8 * 8, 10)
# resized to 32 -> 28 -> 14 -> 10 -> 5: 16*5*5 = 400 features
LENET = conv(1, 6, 5) + conv(6, 16, 5) + linear(400, 120) + linear(120, 84) + linear(84, 10)
EXPECTED_PARAMS = {
    "s4_mlp_p2_p5": S4_MLP,
    "s4_mlp_p5_p2": S4_MLP,
    "s2_mlp": S2_MLP,
    "s2_mlp_no_bn": S2_MLP - 2 * 1024,
    "s2_mlp_no_dropout": S2_MLP,
    "s2_cnn": S2_CNN,
    "s2_cnn_relu_before_bn": S2_CNN,
    "s2_cnn_pool_before_dropout": S2_CNN,
    "s2_cnn_no_bn": S2_CNN - 2 * 64 - 2 * 128,
    "s2_cnn_no_dropout": S2_CNN,
    "lenet_std_bn": LENET + 2 * 6 + 2 * 16,
    "lenet_inbn_bn": LENET + 2 * 1 + 2 * 6 + 2 * 16,
    "lenet_dropout": LENET,
    "lenet_bn_dropout": LENET + 2 * 6 + 2 * 16,
    # the studies' linear classifiers (softmax regression): an MLP without hidden layers
    **{name: linear(784, 10) for name in ("s1_linear", "s2_mlp_linear", "s2_cnn_linear", "s4_linear", "s5_linear")},
}


def test_every_default_variant_has_a_hand_computed_count(real_params):
    # ResNets are counted against torchvision's in test_resnet.py
    assert set(EXPECTED_PARAMS) == {v for v, spec in real_params["variants"].items() if spec["model"] != "resnet"}


@pytest.mark.parametrize("variant, expected", EXPECTED_PARAMS.items())
def test_parameter_counts_match_hand_formulas(real_params, variant, expected):
    model = _build(real_params, variant)
    assert _count(model) == expected
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_s2_cnn_on_cifar_shape_has_10368_features(real_params):
    model = _build(real_params, "s2_cnn", input_shape=(3, 32, 32))
    assert model.head.in_features == 128 * 9 * 9 == 10368


@pytest.mark.parametrize(
    "variant, block",
    [
        ("s2_cnn", ["Conv2d", "BatchNorm2d", "ReLU", "Dropout", "MaxPool2d"]),
        ("s2_cnn_relu_before_bn", ["Conv2d", "ReLU", "BatchNorm2d", "Dropout", "MaxPool2d"]),
        ("s2_cnn_pool_before_dropout", ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Dropout"]),
        ("s2_cnn_no_bn", ["Conv2d", "ReLU", "Dropout", "MaxPool2d"]),
        ("s2_cnn_no_dropout", ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]),
    ],
)
def test_cnn_blocks_run_in_the_specified_order(real_params, variant, block):
    assert _call_order(_build(real_params, variant), (1, 28, 28)) == block * 2 + ["Flatten", "Linear"]


def test_mlp_orders(real_params):
    assert _call_order(_build(real_params, "s2_mlp"), (1, 28, 28)) == [
        "Flatten", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert _call_order(_build(real_params, "s4_mlp_p2_p5"), (1, 28, 28)) == [
        "Flatten", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]


def test_lenet_variants(real_params):
    conv_bn = ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    conv_dropout = ["Conv2d", "ReLU", "MaxPool2d", "Dropout"]
    fc = ["Linear", "ReLU"]
    fc_dropout = ["Linear", "ReLU", "Dropout"]
    assert _call_order(_build(real_params, "lenet_std_bn"), (1, 28, 28)) == [
        "Resize", *conv_bn, *conv_bn, "Flatten", *fc, *fc, "Linear"]
    assert _call_order(_build(real_params, "lenet_inbn_bn"), (1, 28, 28)) == [
        "Resize", "BatchNorm2d", *conv_bn, *conv_bn, "Flatten", *fc, *fc, "Linear"]
    assert _call_order(_build(real_params, "lenet_dropout"), (1, 28, 28)) == [
        "Resize", "Dropout", *conv_dropout, *conv_dropout, "Flatten", *fc_dropout, *fc_dropout, "Linear"]
    assert _call_order(_build(real_params, "lenet_bn_dropout"), (1, 28, 28)) == [
        "Resize", "Dropout", *[*conv_bn, "Dropout"], *[*conv_bn, "Dropout"], "Flatten", *fc_dropout, *fc_dropout,
        "Linear"]


def test_dropout_modules_carry_the_resolved_rates(real_params):
    rates = [m.p for m in _build(real_params, "s4_mlp_p5_p2").modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.5, 0.2]
    rates = [m.p for m in _build(real_params, "lenet_dropout").modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.2, 0.5, 0.5, 0.5, 0.5]
    real_params["dropout"] = 0.3
    assert [m.p for m in _build(real_params, "s2_cnn").modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]


def test_d2l_init_is_normal_with_std_0_01(real_params):
    torch.manual_seed(0)
    model = _build(real_params, "s4_mlp_p2_p5")
    weight = model.hidden.fc1.linear.weight
    assert abs(weight.std().item() - 0.01) < 5e-4 and abs(weight.mean().item()) < 5e-4
    assert torch.all(model.hidden.fc1.linear.bias == 0)


def test_lenet_resizes_to_32(real_params):
    model = _build(real_params, "lenet_std_bn")
    seen = []
    model.features.conv1.conv.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape))
    model(torch.zeros(2, 1, 28, 28))
    assert seen == [torch.Size([2, 1, 32, 32])]
