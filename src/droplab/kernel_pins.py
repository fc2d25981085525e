"""Same numbers on every x86-64 machine: pin the CPU kernel libraries before torch loads.

PyTorch's CPU kernels pick their code by the machine. ATen vectorizes for AVX-512 where the
CPU has it and AVX2 elsewhere (and its normal_, which initialises weights, has an AVX2-only
path); MKL's GEMM dispatches on the vendor and instruction set; oneDNN's and NNPACK's
convolutions pick kernels and blocking by instruction set and cache size; numpy dispatches its
loops likewise. Each choice changes the last bits of a sum, and training (Adam with BN most of
all) grows last bits into other trajectories. So, before torch is imported:

- ATen runs its AVX2 kernels (`ATEN_CPU_CAPABILITY=avx2`), the level every x86-64 CPU of the
  last decade has, and so does oneDNN, which runs the convolutions (`ONEDNN_MAX_CPU_ISA=AVX2`);
- MKL runs its COMPATIBLE branch (`MKL_CBWR`), the only conditional-numerical-reproducibility
  branch that MKL documents as giving the same results on Intel and non-Intel CPUs (its AVX2
  branch falls back to vendor dispatch on AMD), with a fixed thread count (`MKL_DYNAMIC`);
- numpy's dispatched loops stop at AVX2 (`NPY_DISABLE_CPU_FEATURES`).

After import, `apply_torch_pins` turns NNPACK off: without it, no-grad convolutions (evaluation)
would take NNPACK's own kernels, which nothing pins. oneDNN stays on: ATen's fallback
convolution (im2col plus one GEMM per image) made a ResNet-18 training step 13x slower here,
and its backward pass 90% of the step. Dropout masks come from `torch.rand`
(models.blocks.Dropout), not from `bernoulli_`, which draws through MKL on Intel CPUs only.

OpenMP's idle threads sleep rather than spin (`OMP_WAIT_POLICY=PASSIVE`, unless set): it
changes no number, costs nothing measurable in a lone run, and halves the time of two
2-thread stages sharing two cores (`droplab sweep --jobs 2`, the test suite), where spinning
threads took the cores from each other.

`DROPLAB_CPU_KERNELS=native` opts out (faster; results then depend on the machine). Off
x86-64, or without AVX2 and FMA, the pin cannot hold; `fingerprint()` says so. The GPU path is
untouched: it is deterministic per GPU model.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

OPT_OUT = "DROPLAB_CPU_KERNELS"
PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "COMPATIBLE",
    "MKL_DYNAMIC": "FALSE",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}
NEEDED_FLAGS = ("avx2", "fma")  # ATen's avx2 kernels use both


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags, or None where they cannot be read (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def cpu_vendor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def why_not_pinnable() -> str | None:
    """None when this machine can run the pinned kernels, else the reason it cannot."""
    if os.environ.get(OPT_OUT, "pinned") == "native":
        return f"{OPT_OUT}=native (opted out)"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"{platform.machine()} is not x86-64"
    flags = cpu_flags()
    if flags is None:
        return "cannot read the CPU's feature flags (/proc/cpuinfo)"
    missing = [flag for flag in NEEDED_FLAGS if flag not in flags]
    if missing:
        return f"the CPU lacks {' and '.join(missing)}"
    return None


def pin_environment() -> str | None:
    """Set the kernel-level variables for this process and every stage it starts; must run
    before torch or numpy is imported. Returns why the pin does not hold, or None."""
    reason = why_not_pinnable()
    if reason is None:
        loaded = [name for name in ("torch", "numpy") if name in sys.modules]
        if loaded:
            reason = f"{' and '.join(loaded)} imported before droplab, so the kernel pins came too late"
        else:
            os.environ.update(PINS)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism on GPU
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads sleep: see the module docstring
    return reason


def native_environment() -> dict[str, str]:
    """The environment for a child process that opts out: this process's, less the pins it set
    (a child inherits them), with DROPLAB_CPU_KERNELS=native. For benchmarks and tests."""
    env = {name: value for name, value in os.environ.items() if name not in PINS}
    env[OPT_OUT] = "native"
    return env


PIN_FAILURE = pin_environment()  # droplab/__init__ imports this module first


def apply_torch_pins() -> None:
    """After torch loads: no NNPACK, whose kernels no setting pins (ATen uses it for no-grad
    convolutions when oneDNN declines one)."""
    import torch

    if PIN_FAILURE is None:
        torch.backends.nnpack.set_flags(False)


def unpinned_reason() -> str | None:
    """None when this process computes the committed, machine-independent numbers on the CPU."""
    import torch

    if PIN_FAILURE is not None:
        return PIN_FAILURE
    capability = torch.backends.cpu.get_cpu_capability()
    return None if capability == "AVX2" else f"ATen runs its {capability} kernels, not AVX2"


def pinned() -> bool:
    return unpinned_reason() is None


def kernel_identity(device) -> dict[str, object]:
    """What picks the kernels of a run on `device` (a torch.device), and so its last bits: a
    checkpoint resumes only under the same. `fingerprint()` is the fuller record, for logs."""
    from importlib.metadata import version

    import torch

    facts: dict[str, object] = {"device": device.type, "torch": torch.__version__, "timm": version("timm"),
                                "numpy": version("numpy")}
    if device.type == "cuda":
        facts.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version(), nccl=".".join(map(str, torch.cuda.nccl.version())))
    else:
        facts["cpu_kernels"] = unpinned_reason() or "pinned"
    return facts


def fingerprint(device: str = "cpu") -> dict[str, object]:
    """What produced a run's numbers: written beside its timings, never into the files that
    must diff cleanly."""
    import numpy as np
    import torch

    facts: dict[str, object] = {
        "pinned": pinned(),
        "unpinned_reason": unpinned_reason(),
        "device": device,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_vendor": cpu_vendor(),
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "unset"),
        "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "unset"),
        "onednn": torch.backends.mkldnn.enabled,
        "nnpack": torch._C._get_nnpack_enabled(),
        "threads": torch.get_num_threads(),
    }
    if device == "cuda":
        facts["gpu"] = torch.cuda.get_device_name()
        facts["cuda"] = torch.version.cuda
    return facts
