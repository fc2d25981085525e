"""fvcore's counts, cross-checked against torch's own FlopCounterMode on every model family."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from droplab.analysis.profile import flop_analysis, profile_model
from droplab.config import parse_params
from droplab.models.registry import create_model
from droplab.models.resnet_spec import ResNetSpec

# Ops both counters have formulas for: fvcore counts them as multiply-adds, torch as 2 FLOPs each.
SHARED_FVCORE_OPS = ("conv", "linear", "addmm", "matmul", "bmm")


def _torch_flops(model, shape) -> int:
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *shape))
    return counter.get_total_flops()


@pytest.mark.parametrize("variant", ["s4_mlp_p2_p5", "s2_mlp", "s2_cnn", "lenet_bn_dropout"])
def test_fvcore_matches_flop_counter_mode(real_params, variant):
    params = parse_params(real_params)
    model = create_model(params.variants[variant], params.rates(variant), (1, 28, 28), 10)
    by_op = flop_analysis(model, [1, 28, 28]).by_operator()
    shared = sum(count for op, count in by_op.items() if op in SHARED_FVCORE_OPS)
    assert shared > 0 and 2 * shared == _torch_flops(model, (1, 28, 28))


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
@pytest.mark.parametrize("head", ["avg", "dropout_classifier"])
def test_fvcore_matches_flop_counter_mode_on_resnets(arch, head):
    spec = ResNetSpec(model="resnet", arch=arch, placement="after_bn", head=head)
    model = create_model(spec, [0.5], (3, 64, 64), 200)
    by_op = flop_analysis(model, [3, 64, 64]).by_operator()
    assert 2 * sum(count for op, count in by_op.items() if op in SHARED_FVCORE_OPS) == _torch_flops(model, (3, 64, 64))


def test_profile_names_the_ops_fvcore_skips(real_params):
    params = parse_params(real_params)
    model = create_model(params.variants["s2_cnn"], params.rates("s2_cnn"), (1, 28, 28), 10)
    summary, table = profile_model(model, [1, 28, 28])
    assert summary["skipped_ops"] == {"aten::max_pool2d": 2}
    assert summary["params"] == sum(p.numel() for p in model.parameters())
    assert "features.conv1" in table and "#parameters or shape" in table
