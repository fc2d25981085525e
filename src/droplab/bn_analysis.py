"""What BN learned and how dropout disturbs it: learned gamma/beta, variance shift, recalibration.

Variance shift (Li et al., CVPR 2019): BN's running variance is collected in train mode, where
dropout upstream inflates the variance of BN's input; in eval mode dropout is off and BN's
input has a smaller variance than the one it normalizes by. Per BN layer and channel,
a = running variance collected in train mode, b = variance of the same layer's input in eval
mode over the training data; we report max(a/b, b/a) averaged over channels. For dropout(p)
directly before BN on zero-mean input, theory gives a/b = 1/(1-p).

`a` comes in two kinds. `variance_shift` collects it afresh in train mode at the final weights
(a cumulative average over the same data), which isolates what dropout does. The stored
`running_var` also lags behind the last weight updates (it is an exponential average over
training), so `stored_variance_shift`, which uses it, is what inference actually suffers from.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

Batches = Callable[[], Iterable[torch.Tensor]]  # a fresh pass over (already transformed) inputs

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


def bn_layers(model: nn.Module) -> Iterator[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    for name, module in model.named_modules():
        if isinstance(module, BN_TYPES):
            yield name, module


def learned_affine(model: nn.Module) -> dict[str, dict[str, list[float]]]:
    """gamma (weight) and beta (bias) of every affine BN layer."""
    return {name: {"gamma": bn.weight.detach().cpu().tolist(), "beta": bn.bias.detach().cpu().tolist()}
            for name, bn in bn_layers(model) if bn.affine}


def _channel_axes(x: torch.Tensor) -> tuple[int, ...]:
    return (0,) if x.dim() == 2 else (0, 2, 3)


@torch.no_grad()
def eval_input_variance(model: nn.Module, batches: Batches) -> dict[str, torch.Tensor]:
    """Per-channel variance of every BN layer's input, in eval mode, over all batches (float64)."""
    sums: dict[str, list[torch.Tensor]] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].double()
            axes = _channel_axes(x)
            count = x.numel() // x.shape[1]
            stats = [torch.tensor(float(count), dtype=torch.float64, device=x.device), x.sum(axes), (x * x).sum(axes)]
            sums[name] = [a + b for a, b in zip(sums[name], stats, strict=True)] if name in sums else stats
        return record

    handles = [bn.register_forward_pre_hook(hook(name)) for name, bn in bn_layers(model)]
    was_training = model.training
    model.eval()
    try:
        for x in batches():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    variances = {}
    for name, (count, total, total_sq) in sums.items():
        mean = total / count
        variances[name] = (total_sq / count - mean * mean) * count / (count - 1)  # unbiased, as BN's running_var
    return variances


@torch.no_grad()
def train_mode_variance(model: nn.Module, batches: Batches) -> dict[str, torch.Tensor]:
    """The running variance every BN collects in train mode (dropout on) at the current weights,
    as a cumulative average over all batches; measured on a copy."""
    probe = copy.deepcopy(model)
    for _, bn in bn_layers(probe):
        bn.reset_running_stats()
        bn.momentum = None
    probe.train()
    for x in batches():
        probe(x)
    return {name: bn.running_var.double() for name, bn in bn_layers(probe) if bn.running_var is not None}


def _shift(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    shift = {}
    for name in a:
        if name in b:
            measured = b[name].to(a[name].device)
            ratio = torch.maximum(a[name] / measured, measured / a[name])
            shift[name] = float(ratio[torch.isfinite(ratio)].mean())
    return shift


def variance_shifts(model: nn.Module, batches: Batches) -> tuple[dict[str, float], dict[str, float]]:
    """Per BN layer, the mean over channels of max(a/b, b/a), b = eval-mode input variance, for
    a = the train-mode variance collected afresh and for a = BN's stored running_var."""
    b = eval_input_variance(model, batches)
    stored = {name: bn.running_var.double() for name, bn in bn_layers(model) if bn.running_var is not None}
    return _shift(train_mode_variance(model, batches), b), _shift(stored, b)


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Batches) -> nn.Module:
    """A copy of `model` whose BN running statistics are recomputed with dropout off.

    BN layers run in train mode with a cumulative average (momentum=None) so every batch
    counts equally; everything else, dropout included, runs in eval mode. Weights are copied,
    never changed.
    """
    model = copy.deepcopy(model)
    model.eval()
    for _, bn in bn_layers(model):
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    for module in model.modules():  # bn.train() also switched on dropout a BN may hold
        if isinstance(module, nn.Dropout):
            module.eval()
    for x in batches():
        model(x)
    model.eval()
    return model
