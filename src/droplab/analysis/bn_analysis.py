"""What BN learned and how dropout disturbs it: learned gamma/beta, variance shift, recalibration.

Variance shift (Li et al., CVPR 2019): dropout changes the variance of what reaches a BN layer
between training (dropout on) and inference (dropout off), so BN normalizes at inference with
statistics that do not fit its input. Two measures per BN layer, both per channel, then
averaged over channels:

- `dropout_variance_ratio`, D = Var(BN input, dropout on) / Var(BN input, dropout off), at the
  same weights, on the same batches and in the same BN mode: both passes run the whole model in
  eval mode, so every BN normalizes with its stored statistics and BNs upstream behave alike in
  both; in the "on" pass only the dropout modules run in train mode, with seeded masks. D isolates
  what dropout does. Where no dropout is upstream, both passes compute the same tensors and D is
  exactly 1. For dropout(p) feeding BN directly, x' = x * m / (1 - p) with m ~ Bernoulli(1 - p)
  gives E[x'] = c and E[x'^2] = (v + c^2) / (1 - p) for an input of mean c and variance v, so
  D = (v + p c^2) / ((1 - p) v), 1 / (1 - p) at zero mean. With dropout further upstream too
  (stacked blocks, or a ResNet block's bn2 behind bn1's dropout), the dropout's own input already
  differs between the passes; the theory then takes that input's on-pass mean c' and variance v':
  D = (v' + p c'^2) / ((1 - p) v), so that `theory_gap` checks the measurement, not how much
  dropout reaches the layer from further up (that part is in D itself).
- `stored_variance_shift`: a = BN's stored running_var (collected in train mode and an
  exponential average over training, so it also lags behind the last weight updates), b = the
  variance of the layer's input in eval mode on the same data; max(a/b, b/a). This is what
  inference actually suffers from.

"BN input" is the tensor a BN normalizes: for droplab's DropoutBatchNorm2d with placement
before_bn, the output of its inner dropout; otherwise the BN module's input.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

Batches = Callable[[], Iterable[torch.Tensor]]  # a fresh pass over (already transformed) inputs

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)
# Dropout that zeroes units (or whole channels) with probability p and scales the rest by
# 1 / (1 - p); droplab's Dropout is an nn.Dropout. The D theory holds for all of them.
DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def bn_layers(model: nn.Module) -> Iterator[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    for name, module in model.named_modules():
        if isinstance(module, BN_TYPES):
            yield name, module


def learned_affine(model: nn.Module) -> dict[str, dict[str, list[float]]]:
    """gamma (weight) and beta (bias) of every affine BN layer."""
    return {name: {"gamma": bn.weight.detach().cpu().tolist(), "beta": bn.bias.detach().cpu().tolist()}
            for name, bn in bn_layers(model) if bn.affine}


def bn_role(name: str) -> str:
    """"stem" for a ResNet's top-level BN (body.bn1), "shortcut" for a downsample BN, "input" for
    LeNet's BN on the raw input, "block" for every other BN."""
    if name in ("bn1", "body.bn1"):
        return "stem"
    if "downsample" in name.split("."):
        return "shortcut"
    if name.split(".")[-1] == "input_bn":
        return "input"
    return "block"


def _inner_dropout(bn: nn.Module) -> nn.Module | None:
    """The dropout a BN module applies to its own input, as the module reports it (droplab's
    DropoutBatchNorm2d's `feeding_dropout`), so a new placement cannot be misread by name."""
    dropout = getattr(bn, "feeding_dropout", None)
    return dropout if isinstance(dropout, DROPOUT_TYPES) else None


def _sequence(module: nn.Module) -> Iterator[nn.Module]:
    """The modules an nn.Sequential runs, in order, nested Sequentials opened up."""
    for child in module.children():
        if isinstance(child, nn.Sequential):
            yield from _sequence(child)
        else:
            yield child


def direct_dropouts(model: nn.Module) -> dict[str, str]:
    """The BN layers a dropout (p > 0) feeds with nothing in between, each with that dropout's
    module name: DropoutBatchNorm2d with placement before_bn (its inner dropout), and a BN that
    directly follows a dropout in an nn.Sequential (nested Sequentials count as one sequence)."""
    names = {id(module): name for name, module in model.named_modules()}
    feeding: dict[str, str] = {}
    for name, bn in bn_layers(model):
        inner = _inner_dropout(bn)
        if inner is not None and inner.p > 0:
            feeding[name] = names[id(inner)]
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        run = list(_sequence(module))
        for before, after in zip(run, run[1:], strict=False):
            if isinstance(before, DROPOUT_TYPES) and before.p > 0 and isinstance(after, BN_TYPES):
                if _inner_dropout(after) is None:  # its own inner dropout would sit in between
                    feeding[names[id(after)]] = names[id(before)]
    return feeding


def direct_dropout_rates(model: nn.Module) -> dict[str, float]:
    """`direct_dropouts` with each dropout's rate."""
    return {name: float(model.get_submodule(dropout).p) for name, dropout in direct_dropouts(model).items()}


@dataclass(frozen=True)
class Moments:
    """Per-channel count, mean and unbiased variance of a tensor over all batches, float64."""

    count: int
    mean: torch.Tensor
    var: torch.Tensor


class _Accumulator:
    """Per-channel count, mean and sum of squared deviations, combined batch by batch (Chan et al.)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().double()
        axes = (0,) if x.dim() == 2 else (0, *range(2, x.dim()))
        n = x.numel() // x.shape[1]
        mean = x.mean(axes)
        shape = [1, -1] + [1] * (x.dim() - 2)
        m2 = ((x - mean.view(shape)) ** 2).sum(axes)
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.count * n / total)
        self.count = total

    def moments(self) -> Moments:
        assert self.mean is not None and self.m2 is not None
        return Moments(self.count, self.mean, self.m2 / (self.count - 1))  # unbiased, as BN's running_var


def _cuda_devices(model: nn.Module) -> list[int]:
    tensors = [*model.parameters(), *model.buffers()]
    return sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})


@torch.no_grad()
def _moments_pass(model: nn.Module, batches: Batches, dropout: bool, seed: int,
                  dropouts: dict[str, str]) -> tuple[dict[str, Moments], dict[str, Moments]]:
    """One pass over all batches on a copy of `model` in eval mode, with every dropout module in
    train mode when `dropout` (masks drawn after torch.manual_seed(seed); the caller's random
    state is restored): the moments of every BN layer's input, and of the input of the dropout
    module `dropouts` names for a BN layer, keyed by that BN layer."""
    probe = copy.deepcopy(model)
    probe.eval()
    if dropout:
        for module in probe.modules():
            if isinstance(module, DROPOUT_TYPES):
                module.train()
    bn_inputs: dict[str, _Accumulator] = {}
    dropout_inputs: dict[str, _Accumulator] = {}
    handles = []

    def record_input(module: nn.Module, accumulator: _Accumulator) -> None:
        handles.append(module.register_forward_pre_hook(lambda _m, inputs: accumulator.add(inputs[0])))

    for name, bn in bn_layers(probe):
        bn_inputs[name] = _Accumulator()
        inner = _inner_dropout(bn)
        if inner is not None:  # BN normalizes its inner dropout's output
            handles.append(inner.register_forward_hook(lambda _m, _i, out, acc=bn_inputs[name]: acc.add(out)))
        else:
            record_input(bn, bn_inputs[name])
    for name, dropout_name in dropouts.items():
        dropout_inputs[name] = _Accumulator()
        record_input(probe.get_submodule(dropout_name), dropout_inputs[name])
    try:
        with torch.random.fork_rng(devices=_cuda_devices(probe)):
            torch.manual_seed(seed)
            for x in batches():
                probe(x)
    finally:
        for handle in handles:
            handle.remove()
    return ({name: acc.moments() for name, acc in bn_inputs.items() if acc.mean is not None},
            {name: acc.moments() for name, acc in dropout_inputs.items() if acc.mean is not None})


def input_moments(model: nn.Module, batches: Batches, dropout: bool, seed: int = 0) -> dict[str, Moments]:
    """Per-channel moments of every BN layer's input over all batches, with the whole model in
    eval mode and, when `dropout`, every dropout module in train mode with masks drawn after
    torch.manual_seed(seed) (the caller's random state is restored). Runs on a copy."""
    return _moments_pass(model, batches, dropout, seed, {})[0]


def _finite_mean(values: torch.Tensor) -> float | None:
    values = values[torch.isfinite(values)]
    return float(values.mean()) if values.numel() else None


def channel_variance_ratios(on: Moments, off: Moments) -> torch.Tensor:
    """Var(on) / Var(off) per channel; exactly 1 where the two variances are equal (0/0 included)."""
    ratio = on.var / off.var
    return torch.where(on.var == off.var, torch.ones_like(ratio), ratio)


def dropout_variance_ratio(on: Moments, off: Moments) -> float | None:
    """D: the per-channel variance ratio, dropout on over off, averaged over finite channels."""
    return _finite_mean(channel_variance_ratios(on, off))


def dropout_variance_ratio_theory(off: Moments, p: float, dropout_input: Moments | None = None) -> float | None:
    """D that dropout(p) feeding BN directly should give, per channel, averaged over finite channels:
    (v' + p c'^2) / ((1 - p) v), v = the BN input's variance with dropout off, c' and v' the mean
    and variance of the dropout's input in the dropout-on pass (`dropout_input`). Without dropout
    further upstream the dropout's input is the same in both passes (c' = c, v' = v) and this is
    (v + p c^2) / ((1 - p) v); `dropout_input=None` takes that form outright."""
    inner = off if dropout_input is None else dropout_input
    return _finite_mean((inner.var + p * inner.mean**2) / ((1 - p) * off.var))


def stored_variance_shift(bn: nn.modules.batchnorm._BatchNorm, off: Moments) -> float | None:
    """max(a/b, b/a), a = BN's stored running_var, b = its eval-mode input variance, averaged over
    finite channels; None for a BN that keeps no running statistics."""
    if bn.running_var is None:
        return None
    stored = bn.running_var.double().to(off.var.device)
    return _finite_mean(torch.maximum(stored / off.var, off.var / stored))


@dataclass(frozen=True)
class LayerShift:
    role: str  # bn_role's: "stem", "shortcut", "input" or "block"
    fed_by_dropout: str  # "direct" (direct_dropouts), "upstream" (D differs from 1) or "none"
    dropout_variance_ratio: float | None
    dropout_variance_ratio_theory: float | None  # only for "direct"
    theory_gap: float | None  # measured / theory - 1, only for "direct"
    stored_variance_shift: float | None


def variance_shifts(model: nn.Module, batches: Batches, seed: int = 0) -> dict[str, LayerShift]:
    """Per BN layer (in module order): role, how dropout reaches it, D measured and (for direct
    dropout) in theory, and the stored shift. The model is left untouched."""
    direct = direct_dropouts(model)
    off, _ = _moments_pass(model, batches, False, seed, {})
    on, dropout_inputs = _moments_pass(model, batches, True, seed, direct)
    result = {}
    for name, bn in bn_layers(model):
        if name not in off:  # never ran: nothing to measure
            result[name] = LayerShift(bn_role(name), "none", None, None, None, None)
            continue
        ratio = dropout_variance_ratio(on[name], off[name])
        theory = gap = None
        if name in direct:
            fed = "direct"
            p = float(model.get_submodule(direct[name]).p)
            theory = dropout_variance_ratio_theory(off[name], p, dropout_inputs.get(name))
            gap = ratio / theory - 1 if ratio is not None and theory else None
        else:
            fed = "none" if ratio == 1.0 else "upstream"
        result[name] = LayerShift(bn_role(name), fed, ratio, theory, gap, stored_variance_shift(bn, off[name]))
    return result


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
        if isinstance(module, DROPOUT_TYPES):
            module.eval()
    for x in batches():
        model(x)
    model.eval()
    return model
