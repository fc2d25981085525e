"""One GPU per job: parallel train stages (`dvc queue start -j N`, `dvc exp run --run-all -j N`)
each take GPUs no other job holds, instead of all landing on GPU 0.

A job claims a GPU by taking an exclusive `flock` on that GPU's lock file. The lock files live
outside every DVC workspace (queued experiments run in temporary copies of the repository),
in one directory per user that all of them share. The kernel releases a lock when its holder
exits however it exits (SIGKILL, OOM), so a crashed job never strands a GPU. A job that finds
every GPU taken waits for one. The claimed indices are passed to the job's processes (torchrun's
too) in DROPLAB_GPUS; on a machine with one GPU or none, nothing is claimed.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from droplab.errors import DroplabError

ASSIGNED = "DROPLAB_GPUS"  # the CUDA indices this job holds, comma-separated, in local-rank order
LOCK_DIR = "DROPLAB_GPU_LOCK_DIR"
POLL_SECONDS = 1.0

_held: list[int] = []  # the lock files' descriptors: open for as long as the process lives


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR) or Path(tempfile.gettempdir()) / f"droplab-gpu-locks-{os.getuid()}")


def visible_gpus() -> list[str]:
    """A stable name for each visible GPU, in CUDA index order: its UUID, which stays the same
    whatever CUDA_VISIBLE_DEVICES renumbers."""
    import torch

    names = []
    for index in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        names.append(str(uuid) if uuid is not None else f"index{index}")
    return names


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.set_inheritable(fd, True)  # kept across the exec into torchrun
    return fd


def claim(count: int, gpus: Sequence[str], directory: Path | None = None) -> list[int]:
    """Hold `count` of `gpus` (names from `visible_gpus`) until this process exits, waiting while
    fewer are free; return their indices. Lower indices first, so a lone job gets GPU 0."""
    if count > len(gpus):
        raise DroplabError(f"train.nproc_per_node={count} asks for {count} GPUs, but {len(gpus)} are visible")
    directory = directory or lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        taken: dict[int, int] = {}
        for index, name in enumerate(gpus):
            fd = _try_lock(directory / f"{name}.lock")
            if fd is not None:
                taken[index] = fd
            if len(taken) == count:
                _held.extend(taken.values())
                return sorted(taken)
        for fd in taken.values():  # not enough: give back what we hold, so two jobs cannot deadlock
            os.close(fd)
        if not waited:
            print(f"droplab: every GPU is held by another droplab job (locks in {directory}); waiting",
                  file=sys.stderr, flush=True)
            waited = True
        time.sleep(POLL_SECONDS)


def claim_for_job(processes: int) -> None:
    """Before anything else uses a GPU: claim this job's GPUs when several are visible and
    nothing has assigned them yet (an outer claim, or a user's own torchrun, which sets
    LOCAL_RANK and places its processes itself)."""
    if ASSIGNED in os.environ or "LOCAL_RANK" in os.environ:
        return
    gpus = visible_gpus()
    if len(gpus) > 1:
        os.environ[ASSIGNED] = ",".join(map(str, claim(processes, gpus)))


def assigned(local_rank: int) -> int:
    """The CUDA index for the process of this local rank: the job's claimed GPU, else the rank's own."""
    claimed = os.environ.get(ASSIGNED)
    return int(claimed.split(",")[local_rank]) if claimed else local_rank
