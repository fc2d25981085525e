"""Training throughput: droplab's on-device loop against the usual DataLoader loop, on equal work.

The reference is how the original studies trained: a torchvision-style Dataset that turns one
uint8 image at a time into a PIL image, then ToTensor and Normalize; a shuffling DataLoader; the
optimizer as `torch.optim.SGD/Adam(model.parameters(), ...)` builds it by default; and a loop
that calls `loss.item()` every step. It runs with 0 and with 2 loader workers (kept alive
between epochs) and the faster counts as the baseline, so the ratio is not flattered by a weak
reference. Both loops start from the same weights, with the same optimizer, batch size and images.
The reference's RandomSampler (what shuffle=True builds) is seeded like droplab's batch order and
every first epoch starts from the same dropout seed, so the first-epoch losses must agree (to float
rounding: droplab's fused optimizer sums in another order): the check that both loops do the same work.

The ratio is the median over rounds of each round's reference time / droplab time, so a slow spell
of the machine cancels out. "Model step alone" times droplab's forward, backward and optimizer step
on one resident, already normalized batch: no loop can beat it, so reference / model step is the
ceiling for the ratio on this machine.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pydantic import TypeAdapter
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torchvision import transforms

from bench.peak import MatmulProbe
from bench.timing import round_robin
from droplab.config import Augment, Params, Schedule, TrainConfig, VariantSpec, load_params
from droplab.models.registry import create_model
from droplab.training.device_data import BatchTransform, Split
from droplab.training.optim import build_optimizer, build_scheduler
from droplab.training.train import Context, train_one_epoch

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
NUM_CLASSES = 10
WORKERS = (0, 2)
FASHION_MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)
# (params.yaml variant, batches per timed epoch, timed epochs): sized for about a minute each on 2 cores
VARIANTS = (("s4_mlp_p2_p5", 60, 5), ("lenet_std_bn", 40, 5), ("s2_cnn", 5, 5))
RESNET18_SMALL = {"model": "resnet", "arch": "resnet18", "stem": "small", "head": "avg", "p": "fixed_p.none"}


@dataclass(frozen=True)
class Case:
    name: str
    spec: VariantSpec
    rates: list[float]
    cfg: TrainConfig
    shape: tuple[int, int, int]
    batches: int  # per timed epoch
    repeats: int  # timed epochs, after one warm-up epoch


@dataclass(frozen=True)
class Throughput:
    case: Case
    droplab: float  # images/s
    baseline: float  # images/s of the faster reference
    baseline_workers: int
    ratio: float  # median over rounds of reference seconds / droplab seconds
    ceiling: float  # median over rounds of reference seconds / model-step-alone seconds
    loss_droplab: float  # mean training loss of the first epoch
    loss_reference: float
    peak: float  # best fp32 matmul FLOP/s, probed in the same rounds


def cases(params: Params, quick: bool) -> list[Case]:
    """The variants to time; the reference loop has no augmentation and a constant lr, so neither may droplab's."""
    resolved = [(params.resolve(name), batches, repeats) for name, batches, repeats in VARIANTS]
    chosen = [(config.name, config.spec, config.rates, config.train, FASHION_MNIST, batches, repeats)
              for config, batches, repeats in resolved]
    resnet = TypeAdapter(VariantSpec).validate_python(RESNET18_SMALL)  # the config of the ResNet-18 variants
    chosen.append(("resnet18 small stem", resnet, [0.0], params.resolve("resnet18_avg").train, CIFAR, 1, 3))
    result = []
    for name, spec, rates, cfg, shape, batches, repeats in chosen:
        update: dict[str, object] = {"augment": Augment(), "schedule": Schedule()}
        if quick:
            update["batch_size"] = min(cfg.batch_size, 16)
            batches, repeats = 2, 2
        result.append(Case(name, spec, rates, cfg.model_copy(update=update), shape, batches, repeats))
    return result


def synthetic(count: int, shape: tuple[int, int, int], seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Learnable uint8 images (a blocky pattern per class plus noise), so first-epoch losses can be compared."""
    rng = np.random.default_rng(seed)
    channels, height, width = shape
    blocks = rng.integers(0, 256, (NUM_CLASSES, channels, 4, 4))
    patterns = blocks.repeat(height // 4, axis=2).repeat(width // 4, axis=3)
    labels = rng.permutation(np.arange(count) % NUM_CLASSES)
    images = np.clip(patterns[labels] + rng.normal(0.0, 60.0, (count, *shape)), 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


class ArrayDataset(Dataset):
    """torchvision's MNIST/CIFAR10 pattern: HWC uint8 array -> PIL image -> transform, one sample at a time."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable):
        hwc = images.transpose(0, 2, 3, 1)
        self.images = hwc[..., 0] if hwc.shape[-1] == 1 else np.ascontiguousarray(hwc)
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def reference_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader) -> float:
    """The usual loop; returns the mean batch loss, which it logs every step."""
    model.train()
    total = 0.0
    for images, labels in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def usual_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer as the studies' code built it: torch's default (per-tensor) implementation."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def model_step_alone(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, labels: torch.Tensor,
                     steps: int) -> float:
    """`steps` forward/backward/optimizer steps on one resident batch: the model's own cost."""
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return loss.item()


def _sides(case: Case, images: np.ndarray, labels: np.ndarray) -> dict[str, Callable[[], float]]:
    """One epoch of each contender, each with its own copy of the same initial model."""
    cpu = torch.device("cpu")
    scaled = images.reshape(len(images), images.shape[1], -1) / 255.0
    mean, std = scaled.mean(axis=(0, 2)).tolist(), scaled.std(axis=(0, 2)).tolist()
    torch.manual_seed(SEED)
    initial = create_model(case.spec, case.rates, case.shape, NUM_CLASSES)

    model = copy.deepcopy(initial)
    optimizer = build_optimizer(model, case.cfg)
    split = Split(torch.from_numpy(images), torch.from_numpy(labels))
    ctx = Context(BatchTransform(mean, std, case.spec.normalize, cpu), NUM_CLASSES, cpu, autocast=False)
    generator = torch.Generator().manual_seed(SEED)
    scheduler = build_scheduler(optimizer, case.cfg, len(split) // case.cfg.batch_size)
    sides: dict[str, Callable[[], float]] = {
        "droplab": lambda: train_one_epoch(model, optimizer, scheduler, split, case.cfg, ctx, generator, None)["loss"]}
    alone = copy.deepcopy(initial)
    batch = ctx.transform(split.images[: case.cfg.batch_size]), split.labels[: case.cfg.batch_size]
    sides["model step alone"] = partial(model_step_alone, alone, build_optimizer(alone, case.cfg), *batch, case.batches)

    steps = [transforms.ToTensor()] + ([transforms.Normalize(mean, std)] if case.spec.normalize else [])
    dataset = ArrayDataset(images, labels, transforms.Compose(steps))
    for workers in WORKERS:
        ref_model = copy.deepcopy(initial)
        ref_optimizer = usual_optimizer(ref_model, case.cfg)
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(SEED))
        loader = DataLoader(dataset, case.cfg.batch_size, sampler=sampler, num_workers=workers,
                            persistent_workers=workers > 0, generator=torch.Generator().manual_seed(SEED))
        sides[f"workers={workers}"] = partial(reference_epoch, ref_model, ref_optimizer, loader)
    return sides


def measure(case: Case, probe: MatmulProbe) -> Throughput:
    count = case.batches * case.cfg.batch_size  # whole batches: no ragged remainder on either side
    images, labels = synthetic(count, case.shape)
    sides = _sides(case, images, labels)
    losses = {}
    for name, run in sides.items():  # warm-up, and the equal-work check: same weights, batches and dropout masks
        torch.manual_seed(SEED)
        losses[name] = run()
    probe()
    times = round_robin({**sides, "matmul": probe}, case.repeats)
    speed = {name: count / statistics.median(times[name]) for name in sides}
    workers = max(WORKERS, key=lambda w: speed[f"workers={w}"])
    reference = times[f"workers={workers}"]

    def paired(name: str) -> float:
        return statistics.median(ref / other for ref, other in zip(reference, times[name], strict=True))

    return Throughput(case, speed["droplab"], speed[f"workers={workers}"], workers, paired("droplab"),
                      paired("model step alone"), losses["droplab"], losses[f"workers={workers}"],
                      probe.flops(min(times["matmul"])))


def run(quick: bool) -> list[Throughput]:
    params = load_params(ROOT / "params.yaml")
    probe = MatmulProbe(1024 if quick else 2048)
    return [measure(case, probe) for case in cases(params, quick)]


def rows(results: list[Throughput]) -> list[dict[str, str]]:
    return [{
        "benchmark": "train throughput",
        "case": f"{r.case.name} (batch {r.case.cfg.batch_size}, {r.case.cfg.optimizer}, "
                f"{r.case.batches * r.case.cfg.batch_size} images/epoch)",
        "measured": f"{r.droplab:,.0f} img/s",
        "baseline": f"{r.baseline:,.0f} img/s (DataLoader, {r.baseline_workers} workers)",
        "ratio": f"{r.ratio:.2f}x",
        "note": f"ceiling {r.ceiling:.2f}x (model step alone); 1st-epoch loss {r.loss_droplab:.5f} vs "
                f"{r.loss_reference:.5f}",
    } for r in results]

