"""BatchNorm with dropout attached to its input (before_bn) or its output (after_bn), and the
SyncBatchNorm conversion that keeps that dropout.

These are still BatchNorm2d / SyncBatchNorm, with the same parameters and buffers, so timm
builds them through its `norm_layer` argument, state_dict keys stay timm's, and a model
converts to SyncBatchNorm and back by loading its state_dict.
"""

from __future__ import annotations

import torch
from torch import nn

from droplab.models.blocks import Dropout

# placement -> whether its dropout acts on the BN's input (so the BN normalizes the dropout's
# output and its statistics see the dropout) rather than on its output. ResNetSpec.placement
# names these, plus "none"; the BN analysis asks a module for `feeding_dropout`, never its name.
DROPOUT_ON_INPUT = {"before_bn": True, "after_bn": False}


class _DropoutAround:
    """Mixin for a BN class: its own dropout applied before or after the normalization."""

    placement: str
    dropout: Dropout

    def _attach(self, p: float, placement: str) -> None:
        if placement not in DROPOUT_ON_INPUT:
            raise ValueError(f"placement {placement!r}: expected one of {', '.join(DROPOUT_ON_INPUT)}")
        self.placement = placement
        self.dropout = Dropout(p)

    @property
    def feeding_dropout(self) -> Dropout | None:
        """The dropout whose output this BN normalizes, or None when it acts on the BN's output."""
        return self.dropout if DROPOUT_ON_INPUT[self.placement] else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.feeding_dropout is not None:
            return super().forward(self.dropout(x))
        return self.dropout(super().forward(x))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dropout={self.placement}"


class DropoutBatchNorm2d(_DropoutAround, nn.BatchNorm2d):
    """BatchNorm2d with dropout on its input (before_bn) or on its output (after_bn)."""

    def __init__(self, num_features: int, p: float, placement: str, **kwargs):
        super().__init__(num_features, **kwargs)
        self._attach(p, placement)


class DropoutSyncBatchNorm(_DropoutAround, nn.SyncBatchNorm):
    """SyncBatchNorm with the same dropout: what DropoutBatchNorm2d becomes under train.sync_bn."""

    def __init__(self, num_features: int, p: float, placement: str, **kwargs):
        super().__init__(num_features, **kwargs)
        self._attach(p, placement)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Every BN in `module` as a SyncBatchNorm, in place, like torch's converter, except that a
    DropoutBatchNorm2d keeps its dropout and placement (torch's would silently drop them)."""
    if isinstance(module, DropoutBatchNorm2d):
        synced = DropoutSyncBatchNorm(module.num_features, p=module.dropout.p, placement=module.placement,
                                      eps=module.eps, momentum=module.momentum, affine=module.affine,
                                      track_running_stats=module.track_running_stats).to(module.running_mean.device)
        synced.load_state_dict(module.state_dict())
        return synced.train(module.training)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child))
    return module
