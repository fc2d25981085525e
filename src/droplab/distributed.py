"""Data-parallel training on the standard engines: processes started by `torchrun`, gradients
averaged by `DistributedDataParallel`, one process per GPU (or per CPU process with gloo).

`train.nproc_per_node > 1` makes the train stage re-execute itself under torchrun on this
machine; across machines the user starts torchrun on each node (see the README), and this
module reads the rank and world size torchrun puts in the environment.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from droplab.device_data import Shard
from droplab.errors import DroplabError


def relaunch_under_torchrun(nproc_per_node: int) -> None:
    """Replace this process by `torchrun --standalone --nproc-per-node=N <same command>`, unless
    torchrun started it (it sets LOCAL_RANK). DVC still sees one command that succeeds or fails."""
    if nproc_per_node > 1 and "LOCAL_RANK" not in os.environ:
        sys.stdout.flush()
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={nproc_per_node}", *sys.argv]
        os.execv(sys.executable, command)


def start(device_type: str) -> Shard:
    """Join the process group torchrun described (NCCL on GPUs, gloo on CPUs); one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Shard()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Shard(dist.get_rank(), dist.get_world_size())


def device_for(shard: Shard) -> torch.device:
    """This process's GPU (LOCAL_RANK picks it on a multi-GPU node), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


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


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
