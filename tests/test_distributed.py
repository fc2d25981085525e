"""Data parallelism: torchrun with 2 gloo processes on the CPU trains the same weights as 1 process."""

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from droplab.errors import DroplabError
from droplab.training import distributed
from droplab.training.device_data import Shard, Split, draw_crop_flip, train_batches
from test_cli import run_stage, write_params

from conftest import REPO
from synthetic import write_prepared

VARIANT = "ddp_mlp"
# No BN (per-process batch statistics) and no dropout (per-process masks): with neither, the
# gradient of the global batch does not depend on how it is split.
SPEC = {"model": "mlp", "p": "fixed_p.none", "hidden": [64, 32], "block": ["linear", "relu"]}


def test_shards_of_every_process_make_up_the_global_batch_and_its_augmentation():
    split = Split(torch.arange(40 * 4, dtype=torch.uint8).view(40, 1, 2, 2), torch.arange(40))
    whole = [labels for _, labels in train_batches(split, 8, torch.Generator().manual_seed(1))]
    shards = [[labels for _, labels in train_batches(split, 8, torch.Generator().manual_seed(1), Shard(rank, 2))]
              for rank in range(2)]
    for step, batch in enumerate(whole):
        assert torch.equal(torch.cat([shards[0][step], shards[1][step]]), batch)
    cpu = torch.device("cpu")
    full = draw_crop_flip(4, 8, 2, True, torch.Generator().manual_seed(5), cpu)
    halves = [draw_crop_flip(4, 8, 2, True, torch.Generator().manual_seed(5), cpu, Shard(rank, 2)) for rank in range(2)]
    for step in range(4):
        for name in ("dy", "dx", "flip"):
            joined = torch.cat([getattr(halves[rank][step], name) for rank in range(2)])
            assert torch.equal(joined, getattr(full[step], name)), (step, name)


SEEDS = (0, 1)  # the tiny config's two seeds of S2: one process group trains both, one after the other


def _train(root: Path, raw: dict, processes: int) -> dict[int, dict]:
    raw["train"]["nproc_per_node"] = processes  # no study sets it: the top-level value takes effect
    root.mkdir()
    write_params(root, raw)
    shutil.copytree(root.parent / "prepared", root / "data" / "prepared")
    done = run_stage(root, "train.py", VARIANT, "--seeds", ",".join(map(str, SEEDS)))
    assert done.returncode == 0, done.stderr[-3000:]
    models = {}
    for seed in SEEDS:
        speed = json.loads((root / f"metrics/speed/{VARIANT}/seed{seed}.json").read_text())
        assert speed["processes"] == processes
        assert done.stdout.count(f"{VARIANT} seed {seed} epoch 2/2") == 1  # rank 0 alone reports
        assert json.loads((root / f"metrics/bn/{VARIANT}/seed{seed}.json").read_text())["bn_layers"] == 0
        models[seed] = torch.load(root / f"models/{VARIANT}/seed{seed}.pt", weights_only=True)
    return models


def test_two_gloo_processes_train_the_weights_of_one(tiny_params, tmp_path: Path):
    # the variant's own train keys: they win over its study's (s2_mlp's tiny cpu block sets epochs and batch)
    tiny_params["variants"][VARIANT] = {**SPEC, "train": {
        "epochs": 2, "batch_size": 20, "augment": {"crop_pad": 2, "flip": True},
        "schedule": {"name": "cosine", "warmup_steps": 3}}}  # per-step lr: both processes must step it alike
    tiny_params["studies"]["s2_mlp"]["variants"].append(VARIANT)
    write_prepared(tmp_path / "prepared", n_train=120)  # 6 global steps per epoch, 10 images per process
    one = _train(tmp_path / "one", tiny_params, processes=1)
    two = _train(tmp_path / "two", tiny_params, processes=2)
    for seed in SEEDS:
        assert one[seed]["state_dict"].keys() == two[seed]["state_dict"].keys()
        for name, weight in one[seed]["state_dict"].items():
            torch.testing.assert_close(two[seed]["state_dict"][name], weight, rtol=1e-5, atol=1e-6,
                                       msg=f"seed {seed} {name}")
        train_metrics = [json.loads((tmp_path / run / f"metrics/train/{VARIANT}/seed{seed}.json").read_text())
                         for run in ("one", "two")]
        assert train_metrics[1]["train"]["loss"] == pytest.approx(train_metrics[0]["train"]["loss"], rel=1e-5)
    assert not all(torch.equal(one[0]["state_dict"][k], one[1]["state_dict"][k]) for k in one[0]["state_dict"])


def test_two_processes_train_every_rate_of_a_swept_variant_in_one_process_group(tiny_params, tmp_path: Path):
    """A process group starts once on torchrun's store: a stage that opened one per rate hung."""
    tiny_params["variants"][VARIANT] = {**SPEC, "p": "dropout", "block": ["linear", "relu", "dropout"],
                                        "train": {"epochs": 1, "batch_size": 20}}
    tiny_params["studies"]["s2_mlp"]["variants"].append(VARIANT)
    tiny_params["train"]["nproc_per_node"] = 2
    write_params(tmp_path, tiny_params)
    write_prepared(tmp_path / "data" / "prepared", n_train=120)
    done = run_stage(tmp_path, "train.py", VARIANT, "--seeds", ",".join(map(str, SEEDS)))
    assert done.returncode == 0, done.stderr[-3000:]
    rates = tiny_params["studies"]["s2_mlp"]["sweep"]["rates"]
    for rate, seed in itertools.product(rates, SEEDS):
        speed = json.loads((tmp_path / f"metrics/speed/{VARIANT}/p{round(rate * 100):02d}/seed{seed}.json").read_text())
        assert speed["processes"] == 2, (rate, seed)
    assert done.stdout.count(f"{VARIANT} seed 0 epoch 1/1") == len(rates)


def test_a_global_batch_that_does_not_split_evenly_is_refused(tiny_params, tmp_path: Path):
    tiny_params["train"]["nproc_per_node"] = 2
    tiny_params["studies"]["s2_mlp"][tiny_params["scale"]]["train"]["batch_size"] = 25  # where s2_mlp's is set
    write_params(tmp_path, tiny_params)
    write_prepared(tmp_path / "data" / "prepared")
    done = run_stage(tmp_path, "train.py", "s2_mlp", "--seeds", "0,1")
    assert done.returncode != 0
    assert "train.batch_size=25 is the global batch; it must divide evenly over 2 processes" in done.stderr
    assert done.stderr.count("must divide evenly") == 1  # refused once, before torchrun started a rank


RESUME_VARIANT = "ddp_dropout_mlp"
# Dropout, so each rank draws its own masks: a resume that gave a rank another rank's RNG stream,
# or restarted it, would train other weights.
RESUME_SPEC = {"model": "mlp", "p": "dropout", "hidden": [64, 32], "block": ["linear", "relu", "dropout"]}
RESUME_EPOCHS = 12  # enough that the kill, right after the first checkpoint, lands well before the last epoch


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant: torchrun's workers run in sessions of their own."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pending, tree = [pid], []
    while pending:
        tree.append(pending.pop())
        pending += children.get(tree[-1], [])
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def _nodes(root: Path, raw: dict) -> list[Path]:
    """Two "nodes": separate folders, so nothing on disk is shared between them."""
    nodes = []
    for rank in range(2):
        node = root / f"node{rank}"
        node.mkdir(parents=True)
        write_params(node, raw)
        shutil.copytree(root.parent / "prepared", node / "data" / "prepared")
        nodes.append(node)
    return nodes


def _launch(nodes: list[Path]) -> list[subprocess.Popen]:
    """torchrun on each node, one process each, meeting at node 0 over TCP as on a real cluster;
    a checkpoint every epoch, so that the kill below finds one before the last."""
    port = _free_port()
    env = {**os.environ, "DROPLAB_CHECKPOINT_SECONDS": "0"}
    return [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={rank}",
                              "--nproc-per-node=1", "--master-addr=127.0.0.1", f"--master-port={port}",
                              str(REPO / "stages" / "train.py"), RESUME_VARIANT, "--seeds", "0,1"],
                             cwd=node, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True) for rank, node in enumerate(nodes)]


def _finish(processes: list[subprocess.Popen]) -> list[str]:
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    return outputs


@pytest.mark.slow
def test_a_two_node_run_killed_after_a_checkpoint_resumes_every_rank_from_node_0s_copy(tiny_params, tmp_path: Path):
    tiny_params["variants"][RESUME_VARIANT] = {**RESUME_SPEC, "train": {"epochs": RESUME_EPOCHS, "batch_size": 100}}
    tiny_params["studies"]["s2_cnn"]["variants"].append(RESUME_VARIANT)  # a study without a sweep: one rate
    write_prepared(tmp_path / "prepared", n_train=1000)  # 10 global steps an epoch
    reference = _nodes(tmp_path / "reference", tiny_params)
    _finish(_launch(reference))

    crashed = _nodes(tmp_path / "crashed", tiny_params)
    saved = crashed[0] / "checkpoints" / RESUME_VARIANT / "seed0.pt"
    processes = _launch(crashed)
    while not saved.exists():
        assert all(process.poll() is None for process in processes), processes[0].stdout.read()[-3000:]
        time.sleep(0.01)
    for process in processes:  # both nodes, as a lost cluster would go
        _kill_tree(process.pid)
        process.wait()
    state = torch.load(saved, weights_only=True)
    assert 1 <= state["epoch"] < RESUME_EPOCHS
    assert len(state["rng"]) == 2 and not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    assert not (crashed[1] / "checkpoints").exists()  # rank 0 alone writes: node 1 has no copy to read

    outputs = _finish(_launch(crashed))
    assert f"{RESUME_VARIANT} seed 0: resuming after epoch {state['epoch']}" in outputs[0]
    assert f"{RESUME_VARIANT} seed 0 epoch {state['epoch']}/" not in outputs[0]
    for seed in SEEDS:  # seed 1 trained after the resume, from scratch
        weights = [torch.load(run[0] / f"models/{RESUME_VARIANT}/seed{seed}.pt", weights_only=True)["state_dict"]
                   for run in (reference, crashed)]
        assert weights[0].keys() == weights[1].keys()
        for name, weight in weights[0].items():
            assert torch.equal(weights[1][name], weight), (seed, name)
        for name in (f"metrics/train/{RESUME_VARIANT}/seed{seed}.json",
                     f"plots/train/{RESUME_VARIANT}/seed{seed}/metrics.json",
                     f"plots/train/{RESUME_VARIANT}/seed{seed}/plots/metrics/val/loss.tsv"):
            assert (crashed[0] / name).read_bytes() == (reference[0] / name).read_bytes(), name
    assert not saved.exists() and not (crashed[1] / "models").exists()


def test_more_cpu_processes_than_cores_are_refused_before_torchrun_starts(monkeypatch):
    def no_exec(*args):
        raise AssertionError("torchrun was started")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "execv", no_exec)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(DroplabError, match="train.nproc_per_node = 3 starts 3 training processes, but there is "
                                           "no GPU and this machine has 2 CPU cores; use at most 2"):
        distributed.relaunch_under_torchrun(3)
    distributed.check_cpu_processes(2)
