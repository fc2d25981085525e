"""Dropout placements relative to BN: the spec's names, the ResNet's table and the BN module agree,
and the BN analysis follows what the module does, not what its placement is called."""

from typing import get_args

import pytest
import torch
from torch import nn

from droplab.analysis.bn_analysis import variance_shifts
from droplab.models import norm
from droplab.models.norm import DropoutBatchNorm2d, convert_sync_batchnorm
from droplab.models.resnet import BLOCK_NORMS
from droplab.models.resnet_spec import ResNetSpec

P = 0.5
DATA_SEED = 1234


def test_every_placement_the_spec_allows_has_a_block_norm_and_no_other():
    assert set(get_args(ResNetSpec.model_fields["placement"].annotation)) == set(BLOCK_NORMS)


def _normalized_input(bn: DropoutBatchNorm2d, x: torch.Tensor, monkeypatch) -> torch.Tensor:
    """What the BN normalization itself receives, caught at torch's functional batch_norm."""
    seen: list[torch.Tensor] = []
    batch_norm = nn.functional.batch_norm

    def spy(tensor, *args, **kwargs):
        seen.append(tensor.clone())
        return batch_norm(tensor, *args, **kwargs)

    monkeypatch.setattr(nn.modules.batchnorm.F, "batch_norm", spy)
    bn(x)
    return seen[0]


@pytest.mark.parametrize("placement", sorted(norm.DROPOUT_ON_INPUT))
def test_feeding_dropout_is_the_dropout_the_normalization_sees(placement, monkeypatch):
    """Independently of the table: a dropout that feeds the BN changes what batch_norm receives."""
    bn = DropoutBatchNorm2d(4, p=P, placement=placement).eval()
    bn.dropout.train()
    x = torch.randn(8, 4, 5, 5) + 1.0
    fed = not torch.equal(_normalized_input(bn, x, monkeypatch), x)
    assert (bn.feeding_dropout is bn.dropout) == fed
    assert fed or bn.feeding_dropout is None


def test_an_unknown_placement_is_refused_by_the_module_and_the_resnet_table():
    with pytest.raises(ValueError, match="placement 'befor_bn': expected one of before_bn, after_bn"):
        DropoutBatchNorm2d(4, p=P, placement="befor_bn")
    with pytest.raises(KeyError):
        BLOCK_NORMS["befor_bn"]


def _data() -> torch.Tensor:
    torch.manual_seed(DATA_SEED)
    return torch.randn(4000, 8, 3, 3) * 0.5 + 1.0


def _trained(model: nn.Module, data: torch.Tensor) -> nn.Module:
    """Running statistics as training leaves them: train-mode passes, dropout on, cumulative average."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    model.train()
    with torch.no_grad():
        for start in range(0, len(data), 500):
            model(data[start:start + 500])
    return model


def test_a_new_placement_that_feeds_bn_gets_the_d_theory_without_an_edit_in_the_analysis(monkeypatch):
    """A placement added under a new name is analysed by what its module does: before this check,
    the analysis matched the string "before_bn", and a new name read as "no dropout feeds it"."""
    monkeypatch.setitem(norm.DROPOUT_ON_INPUT, "dropout_then_bn", True)
    data = _data()
    model = _trained(nn.Sequential(DropoutBatchNorm2d(8, p=P, placement="dropout_then_bn")), data)
    layer = variance_shifts(model, lambda: (data[i:i + 500] for i in range(0, len(data), 500)))["0"]
    c, v = 1.0, 0.25  # the input's mean and variance: D = (v + p c^2) / ((1 - p) v)
    assert layer.fed_by_dropout == "direct"
    assert layer.dropout_variance_ratio == pytest.approx((v + P * c**2) / ((1 - P) * v), rel=0.03)
    assert abs(layer.theory_gap) < 0.02


def test_sync_bn_conversion_keeps_the_feeding_dropout():
    bn = DropoutBatchNorm2d(4, p=P, placement="before_bn")
    synced = convert_sync_batchnorm(nn.Sequential(bn))[0]
    assert synced.placement == "before_bn" and synced.feeding_dropout is synced.dropout
