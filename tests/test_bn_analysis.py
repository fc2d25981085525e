import pytest
import torch
from torch import nn

from droplab import analyze, train
from droplab.bn_analysis import learned_affine, recalibrate, variance_shifts
from droplab.config import parse_params
from droplab.device_data import Split, eval_batches
from droplab.models.resnet import DropoutBatchNorm2d

from synthetic import write_prepared


def _batches(data: torch.Tensor, size: int = 500):
    return lambda: (data[i : i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.7])
def test_dropout_right_before_bn_shifts_variance_by_one_over_one_minus_p(p: float):
    torch.manual_seed(0)
    data = torch.randn(20000, 16)  # zero-mean input
    model = nn.Sequential(nn.Dropout(p), nn.BatchNorm1d(16, momentum=None))
    model.train()
    with torch.no_grad():
        for x in _batches(data)():
            model(x)
    for stored in (False, True):  # collected afresh, and as the stored running variance
        shift = variance_shifts(model, _batches(data))[int(stored)]
        assert list(shift) == ["1"]
        assert shift["1"] == pytest.approx(1 / (1 - p), rel=0.05)


def test_no_dropout_means_no_shift():
    torch.manual_seed(0)
    data = torch.randn(8000, 3, 4, 4) * 2 + 1
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=None)).train()
    with torch.no_grad():
        for x in _batches(data)():
            model(x)
    assert variance_shifts(model, _batches(data))[0]["1"] == pytest.approx(1.0, abs=0.01)
    assert variance_shifts(model, _batches(data))[1]["1"] == pytest.approx(1.0, abs=0.01)


def test_recalibration_keeps_weights_and_removes_the_shift():
    torch.manual_seed(0)
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
    assert variance_shifts(model, _batches(data))[1]["2"] > 1.5
    assert variance_shifts(fixed, _batches(data))[1]["2"] == pytest.approx(1.0, abs=0.01)
    # The architecture's train/eval mismatch itself is unchanged: dropout still feeds the BN.
    assert variance_shifts(fixed, _batches(data))[0]["2"] > 1.5
    assert not fixed.training


def test_learned_affine_reads_gamma_and_beta():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.BatchNorm1d(2, affine=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        model[0].bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    assert learned_affine(model) == {"0": {"gamma": [1.0, 2.0, 3.0], "beta": [-1.0, 0.0, 1.0]}}


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_droplabs_own_dropout_bn_shows_the_shift_and_recalibrates(p: float):
    """The same theory through DropoutBatchNorm2d(before_bn), whose inner dropout recalibration
    must switch off even though it sits inside a BN that runs in train mode."""
    torch.manual_seed(0)
    data = torch.randn(4000, 8, 3, 3)
    model = nn.Sequential(DropoutBatchNorm2d(8, p=p, placement="before_bn", momentum=None))
    model.train()
    with torch.no_grad():
        for x in _batches(data)():
            model(x)
    assert variance_shifts(model, _batches(data))[1]["0"] == pytest.approx(1 / (1 - p), rel=0.05)
    assert variance_shifts(model, _batches(data))[0]["0"] == pytest.approx(1 / (1 - p), rel=0.05)
    fixed = recalibrate(model, _batches(data))
    assert variance_shifts(fixed, _batches(data))[1]["0"] == pytest.approx(1.0, abs=0.01)


def test_a_pass_whose_last_batch_would_hold_one_image_gives_it_to_the_batch_before(tiny_params, tmp_path):
    """BN in train mode (variance shift, recalibration) cannot take a batch of 1: with 120 training
    images and batches of 119, the analysis used to fail after training had succeeded."""
    split = Split(torch.zeros(120, 1, 2, 2, dtype=torch.uint8), torch.arange(120))
    assert [len(labels) for _, labels in eval_batches(split, 119)] == [120]
    assert [len(labels) for _, labels in eval_batches(split, 50)] == [50, 50, 20]
    assert torch.equal(torch.cat([labels for _, labels in eval_batches(split, 119)]), split.labels)

    tiny_params["train"]["eval_batch_size"] = 119
    tiny_params["analysis"]["train_images"] = None
    params = parse_params(tiny_params)
    prepared = write_prepared(tmp_path / "prepared", n_train=120)
    train.main(params, params.first_run("s2_mlp"), prepared, tmp_path / "models", tmp_path / "metrics",
               tmp_path / "plots")
    result = analyze.main(params, "s2_mlp", prepared, tmp_path / "models", tmp_path / "metrics", tmp_path / "report")
    assert result["bn_layers"] == 1 and result["recalibration"] is not None
