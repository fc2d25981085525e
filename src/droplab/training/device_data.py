"""The whole dataset as uint8 tensors on the device, cut into batches by a seeded permutation.

Following airbench: no DataLoader, no per-sample Python. Conversion to float, normalization
and augmentation happen once per batch, on the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from droplab.data.prepare import read_arrays, sample_index
from droplab.errors import DroplabError
from droplab.records import Meta


@dataclass
class Split:
    images: torch.Tensor  # (N, C, H, W) uint8 on the device
    labels: torch.Tensor  # (N,) int64 on the device

    def __len__(self) -> int:
        return len(self.labels)


def load_splits(path: str | Path, device: torch.device, meta: Meta) -> dict[str, Split]:
    """The prepared splits (`prepare.read_arrays`, checked) as tensors on `device`."""
    return {name: Split(torch.from_numpy(images).to(device),
                        torch.from_numpy(labels.astype(np.int64, copy=False)).to(device))
            for name, (images, labels) in read_arrays(path, meta).items()}


def subsets(splits: dict[str, Split], sizes: dict[str, int | None], split_seed: int, run_seed: int) -> dict[str, Split]:
    """Each split cut to `sizes` (None: whole) by a seeded draw. The training subset is drawn
    anew for every run seed, so the spread over seeds includes data sampling; every variant of a
    study draws the same one under the same seed (a paired comparison pairs the data too). The
    validation and test subsets depend on `split_seed` alone, the same for every run."""
    chosen = {}
    for offset, (name, split) in enumerate(splits.items()):
        draw = [split_seed, offset, run_seed] if name == "train" else [split_seed, offset]
        index = sample_index(len(split), sizes.get(name), draw)
        if index is None:
            chosen[name] = split
            continue
        rows = torch.from_numpy(index).to(split.labels.device)
        chosen[name] = Split(split.images[rows], split.labels[rows])
    return chosen


@dataclass(frozen=True)
class Shard:
    """This process's part of every global batch under data parallelism: rank r of w takes
    rows [r*b/w, (r+1)*b/w) of each batch b of the shared permutation. The default is one process."""

    rank: int = 0
    world: int = 1

    def rows(self, global_size: int) -> slice:
        local = global_size // self.world
        return slice(self.rank * local, (self.rank + 1) * local)

    def part(self, length: int) -> slice:
        """This rank's contiguous share of `length` items (evaluation): the first length % world
        ranks take one more, so every item is counted exactly once."""
        base, extra = divmod(length, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))


ONE_PROCESS = Shard()


@dataclass(frozen=True)
class CropFlip:
    """One step's augmentation draws on the device, for this process's rows: the zero padding,
    crop offsets (n,) into the padded image and a flip mask (n,)."""

    pad: int
    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor


def draw_crop_flip(steps: int, batch_size: int, crop_pad: int, flip: bool, generator: torch.Generator,
                   device: torch.device, shard: Shard = Shard()) -> list[CropFlip | None]:
    """Every step's crop offsets and flips for one epoch, drawn at once from the seeded host
    generator and copied to the device in one transfer, as the permutation is: the steps then
    never wait for the host. The draws cover the whole global batch and are sliced to this
    shard, so an image's augmentation does not depend on how many processes train."""
    if not crop_pad and not flip:
        return [None] * steps
    shape = (steps, batch_size)
    offsets = torch.randint(0, 2 * crop_pad + 1, (2, *shape), generator=generator)
    flips = torch.rand(shape, generator=generator) < 0.5 if flip else torch.zeros(shape, dtype=torch.bool)
    packed = torch.cat([offsets, flips[None].long()])[:, :, shard.rows(batch_size)].to(device)
    return [CropFlip(crop_pad, dy, dx, flipped.bool()) for dy, dx, flipped in packed.unbind(1)]


def augment(x: torch.Tensor, draws: CropFlip) -> torch.Tensor:
    """Random crop after zero padding, then random horizontal flip, for a whole batch in a few
    device ops (one gather, one where). The gather leaves NHWC strides; the result is made
    NCHW-contiguous, and the caller sets the memory format."""
    n, _, h, w = x.shape
    if draws.pad:
        padded = torch.nn.functional.pad(x, (draws.pad,) * 4)
        ys = draws.dy[:, None] + torch.arange(h, device=x.device)[None, :]  # (n, h)
        xs = draws.dx[:, None] + torch.arange(w, device=x.device)[None, :]  # (n, w)
        batch = torch.arange(n, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, ys[:, :, None], xs[:, None, :]].permute(0, 3, 1, 2)
    x = torch.where(draws.flip[:, None, None, None], x.flip(3), x)
    return x.contiguous()


class BatchTransform:
    """uint8 batch -> float batch: scale to [0, 1], optionally standardize, augment when given
    draws, and always end in the configured memory format (convolutions run in the one they get)."""

    def __init__(self, mean: list[float], std: list[float], normalize: bool, device: torch.device,
                 channels_last: bool = False):
        shape = (1, len(mean), 1, 1)
        self.mean = torch.tensor(mean, device=device).view(shape)
        self.std = torch.tensor(std, device=device).view(shape)
        self.normalize = normalize
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor, draws: CropFlip | None = None) -> torch.Tensor:
        x = images.float().div_(255.0)
        if self.normalize:
            x = (x - self.mean) / self.std
        if draws is not None:
            x = augment(x, draws)
        return x.contiguous(memory_format=self.memory_format)


Batch = tuple[torch.Tensor, torch.Tensor]


def train_batches(split: Split, batch_size: int, generator: torch.Generator, shard: Shard = Shard()) -> Iterator[Batch]:
    """This process's shard of each full global batch, in a seeded random order shared by all
    processes; the ragged remainder is dropped (BN needs > 1)."""
    if len(split) < batch_size:
        raise DroplabError(f"the train split has {len(split)} images, fewer than train.batch_size={batch_size}")
    order = torch.randperm(len(split), generator=generator).to(split.labels.device)
    rows = shard.rows(batch_size)
    for start in range(0, len(split) - batch_size + 1, batch_size):
        index = order[start + rows.start : start + rows.stop]
        yield split.images[index], split.labels[index]


def eval_batches(split: Split, batch_size: int) -> Iterator[Batch]:
    """Consecutive batches of `batch_size`; a last batch of one image joins the one before it, so
    the passes that run BN in train mode (BN analysis, recalibration) never see a batch of 1."""
    bounds = list(range(0, len(split), batch_size)) + [len(split)]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    for start, stop in zip(bounds, bounds[1:], strict=False):
        yield split.images[start:stop], split.labels[start:stop]
