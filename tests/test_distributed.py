"""Data parallelism: torchrun with 2 gloo processes on the CPU trains the same weights as 1 process."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from droplab.device_data import Shard, Split, augment, train_batches
from test_cli import run_stage, write_params

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
    x = torch.randn(8, 2, 5, 5)
    full = augment(x, 2, True, torch.Generator().manual_seed(5))
    halves = [augment(x[rank * 4:(rank + 1) * 4], 2, True, torch.Generator().manual_seed(5), Shard(rank, 2))
              for rank in range(2)]
    assert torch.equal(torch.cat(halves), full)


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


def test_a_global_batch_that_does_not_split_evenly_is_refused(tiny_params, tmp_path: Path):
    tiny_params["train"]["nproc_per_node"] = 2
    tiny_params["studies"]["s2_mlp"][tiny_params["scale"]]["train"]["batch_size"] = 25  # where s2_mlp's is set
    write_params(tmp_path, tiny_params)
    write_prepared(tmp_path / "data" / "prepared")
    done = run_stage(tmp_path, "train.py", "s2_mlp", "--seeds", "0,1")
    assert done.returncode != 0
    assert "train.batch_size=25 is the global batch; it must divide evenly over 2 processes" in done.stderr
