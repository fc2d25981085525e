"""Crash safety of training: per-epoch checkpoints, resume after SIGKILL, refused foreign
checkpoints, and a NaN loss that stops the run without harming earlier work."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from droplab import checkpoint, train
from droplab.config import parse_params
from droplab.errors import DroplabError
from test_cli import write_params

from conftest import REPO
from synthetic import write_prepared

VARIANT = "s2_cnn"  # BN and dropout: resuming must restore running stats and the dropout RNG
RUN = f"{VARIANT}-seed0"
OUTPUTS = (f"metrics/train/{VARIANT}/seed0.json", f"plots/train/{VARIANT}/seed0.tsv")


def _project(root: Path, raw: dict) -> Path:
    """A DVC project with the real dvc.yaml, the given params and prepared data in place."""
    root.mkdir()
    for code in ("stages", "src"):  # the stage's code dependencies
        shutil.copytree(REPO / code, root / code, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    write_params(root, raw)
    shutil.copy(REPO / "claims.yaml", root / "claims.yaml")
    write_prepared(root / "data" / "prepared", n_train=600)
    # the validate stage's marker, which every stage depends on (`--single-item` runs the train stage alone)
    subprocess.run([sys.executable, str(root / "stages" / "validate.py")], cwd=root, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
    return root


def _repro(root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--single-item", f"train@{RUN}"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_on_the_next_repro_and_ends_byte_identical(tiny_params, tmp_path: Path):
    tiny_params["train"]["epochs"] = 4
    reference = _project(tmp_path / "reference", tiny_params)
    started = time.perf_counter()
    _finish(_repro(reference))
    epoch_seconds = (time.perf_counter() - started) / 4

    crashed = _project(tmp_path / "crashed", tiny_params)
    saved = crashed / "checkpoints" / VARIANT / "seed0.pt"
    process = _repro(crashed)
    while not saved.exists():  # the end of epoch 1
        assert process.poll() is None, process.stdout.read()[-3000:]
        time.sleep(0.05)
    delay = random.uniform(0.1, 0.9) * epoch_seconds
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)  # DVC and the stage, as a lost machine would
    process.wait()
    epoch = torch.load(saved, weights_only=True)["epoch"]
    assert 1 <= epoch < 4, f"killed {delay:.2f} s after epoch 1, checkpoint at epoch {epoch}"
    assert not (crashed / OUTPUTS[0]).exists()

    output = _finish(_repro(crashed))
    assert f"resuming after epoch {epoch} from checkpoints/{VARIANT}/seed0.pt" in output
    for name in OUTPUTS:
        assert (crashed / name).read_bytes() == (reference / name).read_bytes(), name
    weights = [torch.load(root / f"models/{VARIANT}/seed0.pt", weights_only=True)["state_dict"]
               for root in (reference, crashed)]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert not saved.exists()  # a finished run leaves no checkpoint behind


def _train(params, tmp_path: Path, checkpoints: Path) -> dict:
    return train.main(params, params.first_run(VARIANT), tmp_path / "prepared", tmp_path / "models",
                      tmp_path / "metrics", tmp_path / "plots", checkpoints)


def test_every_epoch_is_checkpointed_with_what_a_resume_needs(tiny_params, tmp_path: Path, monkeypatch):
    tiny_params["train"]["epochs"] = 2
    params = parse_params(tiny_params)
    write_prepared(tmp_path / "prepared")
    saved: list[dict] = []
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda path, identity, state: (saved.append(state),
                                                                            real_save(path, identity, state)))
    _train(params, tmp_path, tmp_path / "checkpoints")
    assert [state["epoch"] for state in saved] == [1, 2]
    assert set(saved[0]) == {"epoch", "model", "optimizer", "scheduler", "history", "best_state", "train_seconds",
                             "rng"}
    assert set(saved[0]["rng"]) == {"python", "numpy", "torch", "cuda", "data_order"}
    assert not (tmp_path / "checkpoints" / VARIANT / "seed0.pt").exists()


@pytest.mark.parametrize("change, named", [
    ("variant", "variant"),
    ("lr", "config"),
    ("rate", "config"),
    ("code", "code"),
])
def test_a_checkpoint_of_another_run_is_refused(tiny_params, tmp_path: Path, change: str, named: str):
    prepared = write_prepared(tmp_path / "prepared")
    params = parse_params(tiny_params)
    run = params.first_run(VARIANT)
    identity = train.run_identity(params, params.first_run("s2_mlp") if change == "variant" else run, prepared, 1)
    if change == "code":
        identity["code"] = "0" * 64
    elif change == "lr":
        tiny_params["train"]["lr"] = 0.5
    elif change == "rate":
        tiny_params["variants"][VARIANT]["p"] = "fixed_p.none"
    path = tmp_path / "checkpoints" / VARIANT / "seed0.pt"
    checkpoint.save(path, identity, {"epoch": 1})
    before = path.read_bytes()
    with pytest.raises(DroplabError, match=rf"{path} was written by another run and is not resumed: {named} "):
        _train(parse_params(tiny_params), tmp_path, tmp_path / "checkpoints")
    assert path.read_bytes() == before and not (tmp_path / "metrics").exists()


def test_an_unreadable_checkpoint_is_refused(tiny_params, tmp_path: Path):
    write_prepared(tmp_path / "prepared")
    path = tmp_path / "checkpoints" / VARIANT / "seed0.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    refused = rf"{path}: not a droplab checkpoint; it is loaded weights-only and refused .*delete it"
    with pytest.raises(DroplabError, match=refused):
        _train(parse_params(tiny_params), tmp_path, tmp_path / "checkpoints")


def test_a_nan_loss_names_the_epoch_and_step_and_keeps_the_last_good_checkpoint(tiny_params, tmp_path: Path,
                                                                              monkeypatch):
    tiny_params["train"]["epochs"] = 3
    params = parse_params(tiny_params)
    write_prepared(tmp_path / "prepared")
    good = tmp_path / "metrics" / "train" / VARIANT / "seed0.json"
    good.parent.mkdir(parents=True)
    good.write_text('{"earlier": "good"}\n')
    steps_per_epoch = 120 // params.train_config(VARIANT).batch_size
    real_create = train.create_model

    def create_model_that_diverges(*args, **kwargs):
        model = real_create(*args, **kwargs)
        calls = {"train": 0}

        def poison(module, inputs, output):
            if module.training:
                calls["train"] += 1
                if calls["train"] == steps_per_epoch + 2:  # epoch 2, step 2
                    return output * float("nan")
            return output

        model.register_forward_hook(poison)
        return model

    monkeypatch.setattr(train, "create_model", create_model_that_diverges)
    saved = tmp_path / "checkpoints" / VARIANT / "seed0.pt"
    with pytest.raises(DroplabError) as error:
        _train(params, tmp_path, tmp_path / "checkpoints")
    message = str(error.value)
    assert f"{VARIANT}: the training loss became nan at epoch 2, step 2 of {steps_per_epoch}" in message
    assert "Try a lower learning rate (train.lr" in message and f"kept in {saved}" in message
    assert torch.load(saved, weights_only=True)["epoch"] == 1
    assert good.read_text() == '{"earlier": "good"}\n'
    assert not (tmp_path / "models").exists()
    assert json.loads(good.read_text()) == {"earlier": "good"}
