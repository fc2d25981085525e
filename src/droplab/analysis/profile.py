"""Parameters and FLOPs of a variant, counted by fvcore in eval mode at batch 1.

FLOPs here are fvcore's: one multiply-add of a conv or linear layer counts as one FLOP (so
those are MACs); fvcore also counts one per element for batch norm, upsampling and adaptive
pooling. Ops it has no handle for (max pooling, in-place adds) count zero and are listed in
`skipped_ops`; element-wise ops it ignores by design (ReLU, dropout) count zero unlisted.
"""

from __future__ import annotations

import warnings

import torch
from fvcore.nn import FlopCountAnalysis, flop_count_table, parameter_count
from torch import nn

# fvcore traces with torch.jit, which torch now marks deprecated on every call; the counts are unaffected.
warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=FutureWarning)


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
