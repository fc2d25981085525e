"""Data-parallel training on the standard engines: processes started by `torchrun`, gradients
averaged by `DistributedDataParallel`, one process per GPU (or per CPU process with gloo).

`train.nproc_per_node > 1` makes the train stage re-execute itself under torchrun on this
machine; across machines the user starts torchrun on each node (docs/performance.md, "Several
GPUs, several machines"), and this module reads the rank and world size torchrun puts in the
environment. Only rank 0 touches the disk: it alone reads a checkpoint (other nodes need no
shared filesystem) and sends it to the others, and it gathers every rank's RNG state into the checkpoint it writes.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from droplab.errors import DroplabError
from droplab.training import gpu_pool
from droplab.training.device_data import Shard

# Rank 0 works alone between collectives (each seed's BN analysis and writes) while the others
# wait, which NCCL's default of 10 minutes could cut short; a lost peer still ends the job then.
TIMEOUT = timedelta(minutes=30)


def relaunch_under_torchrun(nproc_per_node: int, batch_sizes: Iterable[int] = ()) -> None:
    """Replace this process by `torchrun --standalone --nproc-per-node=N <same command>`, unless
    torchrun started it (it sets LOCAL_RANK). DVC still sees one command that succeeds or fails.
    Global batches that cannot split over the N processes are refused first, before torchrun
    starts a process per rank to refuse them each."""
    if nproc_per_node > 1 and "LOCAL_RANK" not in os.environ:
        check_cpu_processes(nproc_per_node)
        for batch_size in batch_sizes:
            check_divides(batch_size, Shard(world=nproc_per_node))
        sys.stdout.flush()
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={nproc_per_node}", *sys.argv]
        os.execv(sys.executable, command)


def check_cpu_processes(nproc_per_node: int) -> None:
    """Without a GPU each process is a CPU trainer: more of them than the machine's cores only
    compete (and torchrun starts every one), so refuse before starting any."""
    if torch.cuda.is_available():
        return  # GPU counts are gpu_pool's to check
    cores = os.cpu_count() or 1
    if nproc_per_node > cores:
        raise DroplabError(f"train.nproc_per_node = {nproc_per_node} starts {nproc_per_node} training processes, "
                           f"but there is no GPU and this machine has {cores} CPU cores; use at most {cores}")


def device_for(local_rank: int) -> torch.device:
    """This process's GPU, made current: the pool's choice for this job (gpu_pool), else
    LOCAL_RANK's. The CPU when there is no GPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    index = gpu_pool.assigned(local_rank)
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


@contextmanager
def process_group() -> Iterator[tuple[Shard, torch.device]]:
    """This process's shard and device, inside the process group torchrun described (NCCL on
    GPUs, gloo on CPUs) or alone. The device is made current before the group starts, as NCCL
    needs; the group is destroyed on every way out, failures included. Inside an open group it
    yields that group and leaves it open: a group cannot be started twice on torchrun's store, so
    a stage that trains several configs opens one around them all."""
    device = device_for(int(os.environ.get("LOCAL_RANK", "0")))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        yield Shard(), device
        return
    if dist.is_initialized():
        yield Shard(dist.get_rank(), dist.get_world_size()), device
        return
    if device.type == "cuda":
        dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)
    try:
        yield Shard(dist.get_rank(), dist.get_world_size()), device
    finally:
        dist.destroy_process_group()


def check_divides(batch_size: int, shard: Shard) -> None:
    if batch_size % shard.world:
        raise DroplabError(f"train.batch_size={batch_size} is the global batch; it must divide evenly over "
                           f"{shard.world} processes")


def sum_across(shard: Shard):
    """A reducer for `Meter.summary`: sums a tensor over every process (identity for one process)."""
    if shard.world == 1:
        return None

    def reduce(tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    return reduce


def _to_bytes(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# Named after torch.distributed's object collectives, which they wrap for one value and a Shard.
# Values cross processes as torch.save bytes, read back weights-only: torch's object collectives
# would unpickle the tensors inside with a full pickle (and fail on them in torch 2.14).
def gather_object(value: Any, shard: Shard) -> list[Any] | None:
    """Every rank's `value` (tensors and plain containers), in rank order, on rank 0 (None on
    the others); a collective (torch's gather_object to rank 0)."""
    if shard.world == 1:
        return [value]
    gathered: list[Any] | None = [None] * shard.world if shard.rank == 0 else None
    dist.gather_object(_to_bytes(value), gathered, dst=0)
    return [_from_bytes(data) for data in gathered] if gathered is not None else None


def broadcast_object(value: Any, shard: Shard) -> Any:
    """Rank 0's `value` (tensors and plain containers) on every rank; a collective (torch's
    broadcast_object_list from rank 0, for one value)."""
    if shard.world == 1:
        return value
    box = [_to_bytes(value) if shard.rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return _from_bytes(box[0])


def all_gather_object(value: Any, shard: Shard) -> list[Any]:
    """Every rank's `value` (plain Python values, no tensors), in rank order, on every rank; a
    collective (torch's all_gather_object, returning the list)."""
    if shard.world == 1:
        return [value]
    gathered: list[Any] = [None] * shard.world
    dist.all_gather_object(gathered, value)
    return gathered


def for_training(model: nn.Module, shard: Shard, device: torch.device, compiled: bool) -> nn.Module:
    """The module the training steps call: DDP across processes, then torch.compile when asked.
    Both share `model`'s parameters, so evaluation and checkpoints use `model` itself."""
    if shard.world > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if compiled else model


def share_buffers(model: nn.Module, shard: Shard) -> None:
    """Give every rank rank 0's buffers (BN running statistics). Each rank's last training
    forward updated its own from its shard; evaluation must use the weights rank 0 saves."""
    if shard.world > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
