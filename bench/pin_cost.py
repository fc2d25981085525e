"""`python -m bench.pin_cost`: what the pinned CPU kernels cost, against native ones, per model.

The pins act when the kernel libraries load, so each side runs in a fresh interpreter:
`DROPLAB_CPU_KERNELS=native` on one, the default pin on the other, in alternating rounds so a
slow spell of the machine hits both. Each child times droplab's model step alone (forward,
backward, optimizer step on one resident batch) for the benchmark's cases.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from droplab import kernel_pins  # noqa: E402


def child(quick: bool) -> dict[str, float]:
    """Seconds per model step of each case, after one warm-up pass."""
    import torch

    from bench.train_throughput import NUM_CLASSES, ROOT, SEED, cases, model_step_alone
    from droplab.config import load_params
    from droplab.models.registry import create_model
    from droplab.training.determinism import seed_everything
    from droplab.training.optim import build_optimizer

    seconds = {}
    for case in cases(load_params(ROOT / "params.yaml"), quick):
        seed_everything(SEED, os.cpu_count() or 1)  # also the torch-side pins (oneDNN, NNPACK off)
        model = create_model(case.spec, case.rates, case.shape, NUM_CLASSES)
        optimizer = build_optimizer(model, case.cfg)
        x = torch.randn(case.cfg.batch_size, *case.shape)
        labels = torch.randint(0, NUM_CLASSES, (case.cfg.batch_size,))
        steps = max(2, case.batches)
        model_step_alone(model, optimizer, x, labels, 1)
        start = time.perf_counter()
        model_step_alone(model, optimizer, x, labels, steps)
        seconds[case.name] = (time.perf_counter() - start) / steps
    return seconds


def run(quick: bool, rounds: int) -> list[dict[str, str]]:
    sides = {"pinned": dict(os.environ), "native": kernel_pins.native_environment()}
    times: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for _ in range(rounds):
        for side, env in sides.items():
            done = subprocess.run([sys.executable, "-m", "bench.pin_cost", "--child", *(["--quick"] * quick)],
                                  env=env, capture_output=True, text=True, check=True)
            times[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = []
    for case in times["pinned"][0]:
        ratio = statistics.median(n[case] / p[case] for n, p in zip(times["native"], times["pinned"], strict=True))
        pinned_ms = 1000 * statistics.median(t[case] for t in times["pinned"])
        native_ms = 1000 * statistics.median(t[case] for t in times["native"])
        rows.append({"benchmark": "pinned CPU kernels", "case": case, "measured": f"{pinned_ms:.1f} ms/step",
                     "baseline": f"{native_ms:.1f} ms/step native", "ratio": f"{ratio:.2f}x",
                     "note": f"speed pinned / native, median of {rounds} paired rounds"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pin_cost", description=__doc__)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.quick)))
        return
    for row in run(args.quick, args.rounds):
        print(" | ".join(row.values()))


if __name__ == "__main__":
    main()
