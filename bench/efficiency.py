"""Compute efficiency: each model's achieved training FLOP/s as a share of this machine's fp32 matmul peak.

A training step costs about three forward passes (forward, plus backward to activations and to
weights), so achieved FLOP/s = 3 x forward multiply-adds x 2 x images/s. fvcore counts one
multiply-add as one flop, hence the factor 2. The peak is the one probed in the same rounds as
that model's training (bench/peak.py).
"""

from __future__ import annotations

from bench.train_throughput import NUM_CLASSES, Throughput
from droplab.analysis.profile import flop_analysis
from droplab.models.registry import create_model


def forward_macs(result: Throughput) -> int:
    case = result.case
    return int(flop_analysis(create_model(case.spec, case.rates, case.shape, NUM_CLASSES), list(case.shape)).total())


def run(results: list[Throughput]) -> list[dict[str, str]]:
    rows = []
    for result in results:
        macs = forward_macs(result)
        achieved = 3 * macs * 2 * result.droplab
        rows.append({"benchmark": "efficiency", "case": result.case.name,
                     "measured": f"{achieved / 1e9:.1f} GFLOP/s (droplab loop)",
                     "baseline": f"{result.peak / 1e9:.1f} GFLOP/s fp32 matmul peak",
                     "ratio": f"{achieved / result.peak:.1%}", "note": f"{macs / 1e6:.2f} M forward MACs/image"})
    return rows
