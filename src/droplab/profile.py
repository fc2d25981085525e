"""Parameters and FLOPs of a variant, counted by fvcore in eval mode at batch 1.

FLOPs here are fvcore's: one multiply-add counts as one FLOP (so they are MACs), and ops
fvcore has no formula for (max pooling, ReLU, ...) count zero. The JSON names those ops.
"""

from __future__ import annotations

import torch
from fvcore.nn import FlopCountAnalysis, flop_count_table, parameter_count
from torch import nn


def flop_analysis(model: nn.Module, input_shape: list[int]) -> FlopCountAnalysis:
    model.eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, *input_shape))
    return analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)


def profile_model(model: nn.Module, input_shape: list[int]) -> tuple[dict, str]:
    """The profile JSON and fvcore's per-module table."""
    analysis = flop_analysis(model, input_shape)
    summary = {
        "params": int(parameter_count(model)[""]),
        "flops": int(analysis.total()),
        "input_shape": list(input_shape),
        "skipped_ops": dict(sorted(analysis.unsupported_ops().items())),
    }
    return summary, flop_count_table(analysis, max_depth=4)
