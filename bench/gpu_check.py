"""`python -m bench --gpu`: the GPU path checked in one short run on one GPU (under 8 minutes).

On synthetic data shaped like Tiny-ImageNet (3x64x64, 200 classes), resident on the GPU, with
the paper-scale settings of the studies (bf16 autocast, channels_last, deterministic kernels),
and droplab's own `train_one_epoch`, it reports:

- img/s and % of the GPU's dense bf16 peak for S1's three ResNet-18 variants and one ResNet-50
  (training FLOPs = 3 x forward, forward = 2 x fvcore's multiply-adds);
- host syncs per epoch with and without augmentation (torch's CUDA sync debug mode counts them);
- that the S3 max head trains under torch.use_deterministic_algorithms(True);
- the mean training loss of amp and channels_last against fp32 NCHW from the same weights;
- that two fresh processes train bit-identical weights.

`--device cpu` runs the same code on the CPU (a smoke test: no peak, no sync count there).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.machine import describe
from droplab.analysis.profile import flop_analysis
from droplab.config import Augment, Params, Schedule, TrainConfig, parse_params, read_params
from droplab.models.registry import create_model
from droplab.training.determinism import seed_everything
from droplab.training.device_data import BatchTransform, Split
from droplab.training.optim import build_optimizer, build_scheduler
from droplab.training.train import Context, train_one_epoch

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (3, 64, 64)  # Tiny-ImageNet
CLASSES = 200
THROUGHPUT = ("resnet18_avg", "s1_resnet18_after_bn", "s1_resnet18_before_bn", "s3_resnet50_avg")
MAX_HEAD = "s3_resnet18_max"
AGREEMENT = "s1_resnet18_before_bn"  # dropout and BN: the variant the switches could upset most
LOSS_TOLERANCE = 0.05  # relative gap of the mean loss over the agreement run's steps
# Dense bf16 tensor-core peak (TFLOP/s, fp32 accumulate) from the vendors' data sheets, by name part.
BF16_PEAK_TFLOPS = {"H200": 989, "H100 SXM": 989, "H100 NVL": 835, "H100 PCIe": 756, "H100": 756, "A100": 312,
                    "L40S": 362, "L40": 181, "L4": 121, "A10G": 70, "A10": 125, "A6000": 155, "RTX 4090": 165,
                    "RTX 3090": 71, "B200": 2250}


@dataclass(frozen=True)
class Sizes:
    batch: int
    warmup_steps: int
    steps: int
    agreement_steps: int
    identical_steps: int


FULL = Sizes(batch=256, warmup_steps=10, steps=50, agreement_steps=100, identical_steps=30)
QUICK = Sizes(batch=4, warmup_steps=1, steps=1, agreement_steps=2, identical_steps=1)


def paper_params() -> Params:
    raw = read_params(ROOT / "params.yaml")
    raw["scale"] = "paper"
    return parse_params(raw)


NO_AUGMENT = Augment()


def _config(params: Params, variant: str, sizes: Sizes, augment: Augment = NO_AUGMENT) -> TrainConfig:
    return params.resolve(variant).train.model_copy(update={
        "batch_size": sizes.batch, "augment": augment, "schedule": Schedule(), "epochs": 1})


def synthetic_split(count: int, device: torch.device, seed: int = 0) -> Split:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, *SHAPE), dtype=torch.uint8, generator=generator)
    return Split(images.to(device), torch.randint(0, CLASSES, (count,), generator=generator).to(device))


def _context(device: torch.device, amp: bool, channels_last: bool) -> Context:
    transform = BatchTransform([0.48, 0.45, 0.40], [0.28, 0.27, 0.28], True, device, channels_last)
    return Context(transform, CLASSES, device, amp)


def _model(params: Params, variant: str, ctx: Context, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = params.resolve(variant)
    model = create_model(config.spec, config.rates, SHAPE, CLASSES).to(ctx.device)
    if ctx.transform.memory_format == torch.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _epoch(model: torch.nn.Module, cfg: TrainConfig, split: Split, ctx: Context, seed: int = 0) -> dict[str, float]:
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, len(split) // cfg.batch_size)
    return train_one_epoch(model, optimizer, scheduler, split, cfg, ctx, torch.Generator().manual_seed(seed), None)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for part in sorted(BF16_PEAK_TFLOPS, key=len, reverse=True):
        if part in name:
            return BF16_PEAK_TFLOPS[part] * 1e12
    return None


def throughput(params: Params, device: torch.device, sizes: Sizes) -> list[dict[str, str]]:
    rows = []
    ctx = _context(device, amp=device.type == "cuda", channels_last=device.type == "cuda")
    peak = _peak(device)
    for variant in THROUGHPUT:
        cfg = _config(params, variant, sizes)
        model_config = params.resolve(variant)
        model = _model(params, variant, ctx)
        _epoch(model, cfg, synthetic_split(sizes.batch * sizes.warmup_steps, device), ctx)
        split = synthetic_split(sizes.batch * sizes.steps, device, seed=1)
        _synchronize(device)
        start = time.perf_counter()
        _epoch(model, cfg, split, ctx)
        _synchronize(device)
        images_per_second = sizes.batch * sizes.steps / (time.perf_counter() - start)
        macs = flop_analysis(create_model(model_config.spec, model_config.rates, SHAPE, CLASSES), SHAPE).total()
        achieved = images_per_second * 6 * macs
        share = f"{100 * achieved / peak:.1f}% of {peak / 1e12:.0f} TFLOP/s" if peak else "peak unknown"
        rows.append({"check": "throughput", "case": variant, "result": f"{images_per_second:.0f} img/s",
                     "note": f"{achieved / 1e12:.3g} TFLOP/s, {share}; batch {sizes.batch}, bf16 {ctx.autocast}, "
                             f"channels_last {ctx.transform.memory_format == torch.channels_last}"})
    return rows


def _counted_syncs(model: torch.nn.Module, cfg: TrainConfig, split: Split, ctx: Context) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            _epoch(model, cfg, split, ctx)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def host_syncs(params: Params, device: torch.device, sizes: Sizes) -> list[dict[str, str]]:
    """Syncs of an epoch of `steps` steps and of one twice as long: equal counts are per epoch."""
    rows = []
    variant = "resnet18_avg"
    for augment in (NO_AUGMENT, Augment(crop_pad=8, flip=True)):
        case = f"{variant}, augmentation {'on' if augment.flip else 'off'}"
        if device.type != "cuda":
            rows.append({"check": "host syncs per epoch", "case": case, "result": "n/a",
                         "note": "counted by CUDA's sync debug mode; a CPU has none"})
            continue
        ctx = _context(device, amp=True, channels_last=True)
        cfg = _config(params, variant, sizes, augment)
        model = _model(params, variant, ctx)
        counts = [_counted_syncs(model, cfg, synthetic_split(sizes.batch * steps, device), ctx)
                  for steps in (sizes.steps, 2 * sizes.steps)]
        rows.append({"check": "host syncs per epoch", "case": case, "result": str(counts[0]),
                     "note": f"{counts[0]} in {sizes.steps} steps, {counts[1]} in {2 * sizes.steps}: "
                             + ("per epoch, not per step" if counts[0] == counts[1] else "GROWS with the steps")})
    return rows


def max_head(params: Params, device: torch.device, sizes: Sizes) -> list[dict[str, str]]:
    ctx = _context(device, amp=device.type == "cuda", channels_last=device.type == "cuda")
    try:
        loss = _epoch(_model(params, MAX_HEAD, ctx), _config(params, MAX_HEAD, sizes),
                      synthetic_split(sizes.batch * sizes.steps, device), ctx)["loss"]
        mode = "on" if torch.are_deterministic_algorithms_enabled() else "OFF"
        result, note = "trains", f"{sizes.steps} steps, deterministic algorithms {mode}, loss {loss:.4f}"
    except RuntimeError as exc:
        result, note = "FAILS", str(exc).splitlines()[0]
    return [{"check": "deterministic max head", "case": MAX_HEAD, "result": result, "note": note}]


def agreement(params: Params, device: torch.device, sizes: Sizes) -> list[dict[str, str]]:
    """The same weights and data through each switch; dropout masks follow the memory layout, so
    channels_last draws other masks and only the loss, not the bits, can agree."""
    split = synthetic_split(sizes.batch * sizes.agreement_steps, device)
    cfg = _config(params, AGREEMENT, sizes)
    losses = {}
    for amp, channels_last in ((False, False), (True, False), (False, True), (True, True)):
        ctx = _context(device, amp, channels_last)
        losses[(amp, channels_last)] = _epoch(_model(params, AGREEMENT, ctx), cfg, split, ctx)["loss"]
    base = losses[(False, False)]
    rows = []
    for (amp, channels_last), loss in losses.items():
        gap = abs(loss - base) / base
        verdict = "reference" if (amp, channels_last) == (False, False) else (
            "agrees" if gap <= LOSS_TOLERANCE else "DIFFERS")
        note = (f"mean loss {loss:.4f} over {sizes.agreement_steps} steps, {100 * gap:.2f}% from fp32 NCHW "
                f"(tolerance {100 * LOSS_TOLERANCE:.0f}%)")
        rows.append({"check": "loss agreement", "case": f"bf16 {amp}, channels_last {channels_last}",
                     "result": verdict, "note": note})
    return rows


def weights_digest(device_type: str, quick: bool) -> str:
    """What one fresh process trains, as a SHA-256 of the weights' bytes (`--digest` runs it)."""
    sizes = QUICK if quick else FULL
    device = torch.device(device_type)
    params = paper_params()
    seed_everything(0, params.train.threads)
    ctx = _context(device, amp=device.type == "cuda", channels_last=device.type == "cuda")
    model = _model(params, AGREEMENT, ctx)
    _epoch(model, _config(params, AGREEMENT, sizes, Augment(crop_pad=4, flip=True)),
           synthetic_split(sizes.batch * sizes.identical_steps, device), ctx)
    buffer = io.BytesIO()
    torch.save({name: tensor.cpu() for name, tensor in model.state_dict().items()}, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def identical(device: torch.device, quick: bool) -> list[dict[str, str]]:
    on_gpu = device.type == "cuda"
    command = [sys.executable, "-m", "bench", "--digest", "--device", device.type] + (["--quick"] if quick else [])
    digests = [subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip() for _ in range(2)]
    result = "identical" if digests[0] == digests[1] else "DIFFER"
    return [{"check": "two fresh processes", "case": AGREEMENT, "result": result,
             "note": f"weights' SHA-256 {digests[0][:16]} and {digests[1][:16]}; augmentation on, bf16 {on_gpu}, "
                     f"channels_last {on_gpu}"}]


def run(device: torch.device, quick: bool) -> tuple[str, list[dict[str, str]]]:
    """The machine line and the rows of the check."""
    sizes = QUICK if quick else FULL
    params = paper_params()
    seed_everything(0, params.train.threads)  # deterministic kernels, as training runs
    machine = describe() + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ", no GPU")
    start = time.perf_counter()
    rows = (throughput(params, device, sizes) + host_syncs(params, device, sizes) + max_head(params, device, sizes)
            + agreement(params, device, sizes) + identical(device, quick))
    rows.append({"check": "total", "case": "", "result": f"{time.perf_counter() - start:.0f} s", "note": ""})
    return machine, rows
