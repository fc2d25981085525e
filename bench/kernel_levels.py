"""`python -m bench.kernel_levels`: which numbers change with the CPU kernel level.

Each probe runs in a fresh interpreter under one environment (the kernel libraries read their
level once, at load), and prints a digest of its output bytes. Equal digests across a row mean
that step does not depend on the level; the pinned rows must be equal everywhere. This is the
evidence behind droplab.kernel_pins's pins, and it reruns on any machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

from droplab import kernel_pins

# The environments a machine of another kind would give, forced here. "pinned" rows let droplab
# set its pins first; "raw" rows run with DROPLAB_CPU_KERNELS=native and without the pins.
FORCED = {
    "as is": {},
    "ATen default": {"ATEN_CPU_CAPABILITY": "default"},
    "oneDNN SSE4.1": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "MKL AVX2 branch": {"MKL_CBWR": "AVX2"},
    "MKL SSE2 branch": {"MKL_CBWR": "COMPATIBLE"},
    "numpy baseline": {"NPY_DISABLE_CPU_FEATURES": "X86_V3"},
}


def _digest(*tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes() if hasattr(t, "detach") else t.tobytes())
    return h.hexdigest()[:10]


def probes(pinned: bool) -> dict[str, str]:
    """Digests of every kind of computation a droplab run makes on the CPU."""
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(2)
    if pinned:
        from droplab.kernel_pins import apply_torch_pins
        apply_torch_pins()
    out: dict[str, str] = {}
    g = torch.Generator().manual_seed(0)
    out["randperm"] = _digest(torch.randperm(60000, generator=g))
    out["randint (crops)"] = _digest(torch.randint(0, 9, (4096, 2), generator=g))
    out["rand (flips)"] = _digest(torch.rand(4096, generator=g))
    torch.manual_seed(0)
    out["normal_ (init)"] = _digest(torch.empty(256, 784).normal_(0, 0.01))
    torch.manual_seed(0)
    out["bernoulli_(p) (nn.Dropout)"] = _digest(nn.functional.dropout(torch.ones(100, 1024), 0.5))
    torch.manual_seed(0)
    if pinned:
        from droplab.models.blocks import Dropout
        out["droplab Dropout"] = _digest(Dropout(0.5)(torch.ones(100, 1024)))
    images = np.random.default_rng(0).integers(0, 256, (6000, 1, 28, 28), dtype=np.uint8)
    scaled = images.astype(np.float64) / 255
    out["numpy mean/std"] = _digest(scaled.mean(axis=(0, 2, 3)), scaled.std(axis=(0, 2, 3)))

    torch.manual_seed(0)
    x = torch.randn(256, 784)
    linear = nn.Linear(784, 256)
    y = linear(x)
    y.square().sum().backward()
    out["linear fwd+bwd (GEMM)"] = _digest(y, linear.weight.grad)

    torch.manual_seed(0)
    images = torch.randn(64, 16, 16, 16, requires_grad=True)
    conv = nn.Conv2d(16, 32, 3, padding=1)
    y = conv(images)
    y.square().sum().backward()
    out["conv fwd+bwd"] = _digest(y, conv.weight.grad, images.grad)
    with torch.no_grad():  # evaluation: without oneDNN, ATen would take NNPACK here
        out["conv fwd, no grad (eval)"] = _digest(conv(images))

    torch.manual_seed(0)
    bn = nn.BatchNorm2d(32)
    z = torch.randn(64, 32, 8, 8, requires_grad=True)
    y = bn(z)
    (y * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
    out["batch norm fwd+bwd"] = _digest(y, z.grad, bn.running_var)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 14 * 14, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = torch.randn(128, 1, 28, 28)
    labels = torch.randint(0, 10, (128,))
    for _ in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data), labels).backward()
        opt.step()
    out["20 Adam steps, CNN+BN"] = _digest(*model.state_dict().values())
    return out


def table(rows: dict[str, dict[str, str]]) -> str:
    names = list(next(iter(rows.values())))
    header = "| computation | " + " | ".join(rows) + " |"
    lines = [header, "|" + "---|" * (len(rows) + 1)]
    for name in names:
        base = next(iter(rows.values()))[name]
        cells = [("same" if r.get(name) == base else r.get(name, "-")) if i else base
                 for i, r in enumerate(rows.values())]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kernel_levels", description=__doc__)
    parser.add_argument("--child", choices=("pinned", "raw"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(probes(args.child == "pinned")))
        return
    for mode in ("raw", "pinned"):
        rows = {}
        for label, env in FORCED.items():
            base = os.environ if mode == "pinned" else kernel_pins.native_environment()
            done = subprocess.run([sys.executable, "-m", "bench.kernel_levels", "--child", mode],
                                  env={**base, **env}, capture_output=True, text=True, check=True)
            rows[label] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"\n{mode}: {'droplab pins' if mode == 'pinned' else 'DROPLAB_CPU_KERNELS=native, no pins'}; "
              "'same' = equal to the first column\n")
        print(table(rows))


if __name__ == "__main__":
    main()
