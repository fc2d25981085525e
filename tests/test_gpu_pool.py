"""One GPU per job, on a simulated machine: parallel jobs hold different GPUs, a job waits while
every GPU is held, and a killed job's GPU is free again."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from droplab.errors import DroplabError
from droplab.training import gpu_pool

GPUS = ["GPU-aaaa", "GPU-bbbb"]  # what visible_gpus() names: UUIDs, stable under CUDA_VISIBLE_DEVICES
HOLDER = """
import sys, time
from pathlib import Path
from droplab.training import gpu_pool
print(",".join(map(str, gpu_pool.claim(int(sys.argv[2]), sys.argv[3].split(","), Path(sys.argv[1])))), flush=True)
time.sleep(600)
"""


def _job(locks: Path, count: int = 1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(locks), str(count), ",".join(GPUS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_parallel_jobs_hold_different_gpus_and_a_killed_jobs_gpu_is_free_again(tmp_path: Path):
    first, second = _job(tmp_path), _job(tmp_path)
    try:
        held = {job: job.stdout.readline().strip() for job in (first, second)}
        assert sorted(held.values()) == ["0", "1"]
        third = _job(tmp_path)
        try:
            time.sleep(1.5)
            assert third.poll() is None  # every GPU is held: it waits
            holder_of_1 = next(job for job, gpu in held.items() if gpu == "1")
            holder_of_1.kill()  # no cleanup runs: the kernel drops the lock with the process
            holder_of_1.wait()
            assert third.stdout.readline().strip() == "1"
        finally:
            third.kill()
            assert "every GPU is held by another droplab job" in third.communicate()[1]
    finally:
        for job in (first, second):
            job.kill()
            job.wait()


def test_a_job_of_several_processes_claims_as_many_gpus(tmp_path: Path):
    assert gpu_pool.claim(2, GPUS + ["GPU-cccc"], tmp_path) == [0, 1]
    assert gpu_pool.claim(1, GPUS + ["GPU-cccc"], tmp_path) == [2]
    with pytest.raises(DroplabError, match="train.nproc_per_node=3 asks for 3 GPUs, but 2 are visible"):
        gpu_pool.claim(3, GPUS, tmp_path)


@pytest.mark.parametrize("visible, assigned", [([], None), (["GPU-aaaa"], None), (GPUS, "0")])
def test_a_job_claims_only_where_there_is_a_choice(monkeypatch, tmp_path: Path, visible, assigned):
    for name in (gpu_pool.ASSIGNED, "LOCAL_RANK"):  # set first, so that monkeypatch restores the absence too
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)
    monkeypatch.setenv(gpu_pool.LOCK_DIR, str(tmp_path))
    monkeypatch.setattr(gpu_pool, "visible_gpus", lambda: visible)
    gpu_pool.claim_for_job(1)
    assert os.environ.get(gpu_pool.ASSIGNED) == assigned
    assert gpu_pool.assigned(0) == int(assigned or 0)


def test_torchruns_processes_take_the_jobs_gpus_in_local_rank_order(monkeypatch):
    monkeypatch.setenv(gpu_pool.ASSIGNED, "3,1")
    assert [gpu_pool.assigned(rank) for rank in range(2)] == [3, 1]
    monkeypatch.delenv(gpu_pool.ASSIGNED)
    assert gpu_pool.assigned(1) == 1  # a user's own torchrun: LOCAL_RANK picks the GPU
