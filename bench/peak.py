"""This machine's fp32 matmul peak, probed between training epochs rather than once.

The machine's speed drifts by a factor of 3 within minutes, so a peak measured at another
moment than the training it is compared with says little; the probe runs in the same rounds.
"""

from __future__ import annotations

import torch

MATMULS = 3  # per probe call: a round's figure is their mean, the peak the best round


class MatmulProbe:
    def __init__(self, n: int):
        self.n = n
        self.a, self.b, self.out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)

    def __call__(self) -> None:
        for _ in range(MATMULS):
            torch.mm(self.a, self.b, out=self.out)

    def flops(self, seconds: float) -> float:
        """FLOP/s of one call that took `seconds`; an n x n matmul is 2 n^3 flops."""
        return MATMULS * 2 * self.n**3 / seconds
