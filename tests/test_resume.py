"""Crash safety of training: checkpoints (after the last epoch, and by time), resume after SIGKILL, refused foreign
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

from droplab.analysis import analyze
from droplab.config import parse_params
from droplab.errors import DroplabError
from droplab.records import load_meta
from droplab.training import checkpoint, train
from droplab.training.device_data import Shard
from test_cli import write_params

from conftest import REPO
from synthetic import write_prepared

VARIANT = "s2_cnn"  # BN and dropout: resuming must restore running stats and the dropout RNG
SEEDS = (0, 1)  # the tiny config's two seeds of S2 CNN: one stage trains both
# per seed: its metrics, its BN analysis and its DVCLive folder (the log's steps must continue over a resume)
OUTPUTS = tuple(f"{folder}/{VARIANT}/seed{seed}{suffix}" for seed in SEEDS
                for folder, suffix in (("metrics/train", ".json"), ("metrics/bn", ".json"),
                                       ("plots/train", "/metrics.json"), ("plots/train", "/test_confusion.tsv"),
                                       ("plots/train", "/plots/metrics/train/loss.tsv"),
                                       ("plots/train", "/plots/metrics/val/acc1.tsv"),
                                       ("plots/train", "/plots/metrics/lr.tsv")))


def _epochs(raw: dict, epochs: int) -> dict:
    """`epochs` for VARIANT, set where it takes effect: its home study's block at the config's scale."""
    raw["studies"]["s2_cnn"][raw["scale"]]["train"]["epochs"] = epochs
    return raw


def _project(root: Path, raw: dict) -> Path:
    """A DVC project with the real dvc.yaml, the given params and prepared data in place."""
    root.mkdir()
    for code in ("stages", "src"):  # the stage's code dependencies
        shutil.copytree(REPO / code, root / code, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    write_params(root, raw)
    shutil.copy(REPO / "claims.yaml", root / "claims.yaml")
    write_prepared(root / "data" / "prepared", n_train=200)  # 4 steps an epoch
    # the validate stage's marker, which every stage depends on (`--single-item` runs the train stage alone)
    subprocess.run([sys.executable, str(root / "stages" / "validate.py")], cwd=root, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
    return root


def _repro(root: Path) -> subprocess.Popen:
    """`dvc repro` of the train stage, running the project's own copy of droplab (its DVC deps, and
    the code its checkpoints name), not the checkout's, which may change between the two repros."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")])),
           "DROPLAB_CHECKPOINT_SECONDS": "0"}  # a checkpoint every epoch, so that a kill between two finds one
    return subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--single-item", f"train@{VARIANT}"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=env)


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    return output


def _same_weights(a: Path, b: Path) -> bool:
    weights = [torch.load(path, weights_only=True)["state_dict"] for path in (a, b)]
    return weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _wait(process: subprocess.Popen, done) -> float:
    """Poll until `done()`, the stage still running; return the time it became true."""
    while not done():
        assert process.poll() is None, process.stdout.read()[-3000:]
        time.sleep(0.02)
    return time.perf_counter()


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_on_the_next_repro_and_ends_byte_identical(tiny_params, tmp_path: Path):
    """Killed in the middle of seed 1's epochs, after seed 0 finished: the rerun (DVC first deletes
    the stage's outputs, seed 0's included) resumes seed 1 mid-run and does not retrain seed 0."""
    # Six epochs: the kill lands within one epoch (as timed on seed 0) after seed 1's first; under a
    # parallel suite seed 1's epochs can run up to 3x faster than seed 0's did, and must not all end.
    epochs = 6
    _epochs(tiny_params, epochs)
    tiny_params["analysis"]["train_images"] = 100  # the stage's BN analysis of each seed: kept, but short
    assert parse_params(tiny_params).seeds_of(VARIANT) == list(SEEDS)
    reference = _project(tmp_path / "reference", tiny_params)
    _finish(_repro(reference))

    crashed = _project(tmp_path / "crashed", tiny_params)
    first, saved = (crashed / "checkpoints" / VARIANT / f"seed{seed}.pt" for seed in SEEDS)
    process = _repro(crashed)
    # seed 0's checkpoint is rewritten at the end of each epoch: time its epoch 2
    epoch_1 = _wait(process, first.exists)
    written = first.stat().st_mtime_ns
    epoch_seconds = _wait(process, lambda: first.stat().st_mtime_ns != written) - epoch_1
    _wait(process, saved.exists)  # the end of seed 1's epoch 1
    delay = random.uniform(0.1, 0.9) * epoch_seconds
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)  # DVC and the stage, as a lost machine would
    process.wait()
    epoch = torch.load(saved, weights_only=True)["epoch"]
    assert 1 <= epoch < epochs, f"killed {delay:.2f} s after seed 1's epoch 1, checkpoint at epoch {epoch}"
    assert torch.load(first, weights_only=True)["epoch"] == epochs  # kept until every seed is written
    assert (crashed / OUTPUTS[0]).exists() and not (crashed / f"metrics/train/{VARIANT}/seed1.json").exists()

    output = _finish(_repro(crashed))
    assert f"{VARIANT} seed 0: resuming after epoch {epochs} from checkpoints/{VARIANT}/seed0.pt" in output
    assert f"{VARIANT} seed 1: resuming after epoch {epoch} from checkpoints/{VARIANT}/seed1.pt" in output
    assert f"{VARIANT} seed 0 epoch" not in output, "seed 0 was retrained"
    assert f"{VARIANT} seed 1 epoch {epoch}/" not in output and f"{VARIANT} seed 1 epoch {epochs}/{epochs}" in output
    for name in OUTPUTS:
        assert (crashed / name).read_bytes() == (reference / name).read_bytes(), name
    for seed in SEEDS:
        rel = f"models/{VARIANT}/seed{seed}.pt"
        assert _same_weights(reference / rel, crashed / rel), rel
    assert not first.exists() and not saved.exists()  # a finished stage leaves no checkpoint behind


def _train(params, tmp_path: Path, checkpoints: Path, seeds: list[int] | None = None, out: Path | None = None,
           measure=None) -> dict[int, dict]:
    out = out or tmp_path
    seeds = params.seeds_of(VARIANT) if seeds is None else seeds
    return train.main(params.resolve(VARIANT), seeds, tmp_path / "prepared", out / "models", out / "metrics",
                      out / "plots", checkpoints, measure)


def test_the_last_epoch_is_checkpointed_and_the_others_by_time(tiny_params, tmp_path: Path, monkeypatch):
    """A short run writes one checkpoint, after its last epoch (what lets a rerun skip a finished
    seed); a long one also one per CHECKPOINT_SECONDS."""
    params = parse_params(_epochs(tiny_params, 3))
    write_prepared(tmp_path / "prepared")
    saved: list[int] = []
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda path, identity, state: (saved.append(state["epoch"]),
                                                                          real_save(path, identity, state)))
    _train(params, tmp_path, tmp_path / "checkpoints", seeds=[0])
    assert saved == [3]
    clock = iter(range(0, 1000, 40))  # 40 s between readings: every other epoch passes 60 s
    monkeypatch.setattr(train, "checkpoint_clock", lambda: float(next(clock)))
    saved.clear()
    _train(params, tmp_path, tmp_path / "checkpoints", seeds=[0])
    assert saved == [2, 3]


def test_every_epoch_is_checkpointed_with_what_a_resume_needs(tiny_params, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)
    params = parse_params(_epochs(tiny_params, 2))
    write_prepared(tmp_path / "prepared")
    checkpoints = tmp_path / "checkpoints" / VARIANT
    saved: list[dict] = []
    at_save: list[tuple[str, list[str]]] = []
    real_save = checkpoint.save

    def recording_save(path, identity, state):
        at_save.append((path.name, sorted(p.name for p in checkpoints.glob("*.pt"))))
        saved.append(state)
        real_save(path, identity, state)

    monkeypatch.setattr(checkpoint, "save", recording_save)
    _train(params, tmp_path, tmp_path / "checkpoints", seeds=[0, 1])
    assert [state["epoch"] for state in saved] == [1, 2, 1, 2]
    assert set(saved[0]) == {"epoch", "model", "optimizer", "scheduler", "history", "best_state", "train_seconds",
                             "rng"}
    assert len(saved[0]["rng"]) == 1  # one process: its own generators, as every rank saves its own
    assert set(saved[0]["rng"][0]) == {"python", "numpy", "torch", "cuda", "data_order"}
    assert saved[1]["scheduler"]["last_epoch"] == 2 * (120 // params.train_config(VARIANT).batch_size)  # per step
    # one file per seed, and seed 0's is still there while seed 1 trains
    assert at_save == [("seed0.pt", []), ("seed0.pt", ["seed0.pt"]), ("seed1.pt", ["seed0.pt"]),
                       ("seed1.pt", ["seed0.pt", "seed1.pt"])]
    assert not list(checkpoints.glob("*.pt"))


def test_a_stage_that_fails_after_its_first_seed_resumes_without_retraining_it(tiny_params, tmp_path: Path,
                                                                               monkeypatch, capsys):
    """Seed 0 finished and was written, seed 1 failed in its second epoch. The rerun starts with
    no outputs (DVC deletes them first), trains seed 1's last epoch only, and writes every
    seed's bytes as an uninterrupted run does; then, and only then, the checkpoints go."""
    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)  # seed 1's first epoch is checkpointed
    params = parse_params(_epochs(tiny_params, 2))
    write_prepared(tmp_path / "prepared")

    def measure(model, splits, ctx, seed: int, test: dict) -> dict:  # what stages/train.py passes
        return analyze.analyze_run(model, splits, ctx.transform, ctx, params.analysis.train_images,
                                   params.train_config(VARIANT).eval_batch_size, seed, test)

    reference = _train(params, tmp_path, tmp_path / "ref_checkpoints", out=tmp_path / "reference", measure=measure)
    checkpoints = tmp_path / "checkpoints"
    first, second = (checkpoints / VARIANT / f"seed{seed}.pt" for seed in SEEDS)
    real_epoch = train.train_one_epoch
    epochs_run: list[bool] = []  # one entry per epoch trained: was seed 0's checkpoint still there?

    def failing_epoch(*args):
        epochs_run.append(first.exists())
        if len(epochs_run) == 4:  # seed 1, epoch 2
            raise RuntimeError("the machine went away")
        return real_epoch(*args)

    monkeypatch.setattr(train, "train_one_epoch", failing_epoch)
    with pytest.raises(RuntimeError, match="the machine went away"):
        _train(params, tmp_path, checkpoints, out=tmp_path / "crashed", measure=measure)
    assert torch.load(first, weights_only=True)["epoch"] == 2 and torch.load(second, weights_only=True)["epoch"] == 1
    crashed = tmp_path / "crashed"
    assert (crashed / OUTPUTS[0]).exists() and not (crashed / f"metrics/train/{VARIANT}/seed1.json").exists()
    for folder in ("models", "metrics", "plots"):  # what DVC does before it reruns the stage
        shutil.rmtree(crashed / folder)
    capsys.readouterr()

    epochs_run.clear()

    def counted_epoch(*args):
        epochs_run.append(first.exists())
        return real_epoch(*args)

    monkeypatch.setattr(train, "train_one_epoch", counted_epoch)
    again = _train(params, tmp_path, checkpoints, out=crashed, measure=measure)
    out = capsys.readouterr().out
    assert epochs_run == [True]  # seed 1's epoch 2 alone, with seed 0's checkpoint still kept
    assert f"{VARIANT} seed 0: resuming after epoch 2 from {first}" in out
    assert f"{VARIANT} seed 1: resuming after epoch 1 from {second}" in out
    assert f"{VARIANT} seed 0 epoch" not in out and f"{VARIANT} seed 1 epoch 2/2" in out
    assert again == reference
    for name in OUTPUTS:
        assert (crashed / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    for seed in SEEDS:
        rel = f"models/{VARIANT}/seed{seed}.pt"
        assert _same_weights(tmp_path / "reference" / rel, crashed / rel), rel
    assert not first.exists() and not second.exists()


@pytest.mark.parametrize("change, named", [
    ("variant", "variant"),
    ("code", "code"),
    ("computes", "computes"),  # another device, process count or kernel pin, with the same params
])
def test_a_checkpoint_of_another_run_is_refused(tiny_params, tmp_path: Path, change: str, named: str):
    prepared = write_prepared(tmp_path / "prepared")
    params = parse_params(tiny_params)
    run = params.first_run(VARIANT)
    ctx = train.make_context(params.resolve(VARIANT), load_meta(prepared), Shard(), torch.device("cpu"))
    other = params.first_run("s2_mlp") if change == "variant" else run
    identity = train.run_identity(params.resolve(other.variant), other, prepared, ctx)
    if change in ("code", "computes"):
        identity[change] = "0" * 64
    elif change == "lr":
        tiny_params["studies"]["s2_cnn"][tiny_params["scale"]]["train"]["lr"] = 0.5  # where VARIANT's lr is set
    elif change == "rate":
        tiny_params["variants"][VARIANT]["p"] = "fixed_p.none"
    elif change == "sizes":  # another subset of the prepared splits is another run
        tiny_params["studies"]["s2_cnn"][tiny_params["scale"]]["train_images"] = 100
    path = tmp_path / "checkpoints" / VARIANT / "seed0.pt"
    checkpoint.save(path, identity, {"epoch": 1})
    before = path.read_bytes()
    with pytest.raises(DroplabError, match=rf"{path} was written by another run and is not resumed: {named} "):
        _train(parse_params(tiny_params), tmp_path, tmp_path / "checkpoints")
    assert path.read_bytes() == before and not (tmp_path / "metrics").exists()


@pytest.mark.parametrize("change", ["lr", "rate", "sizes"])
def test_this_runs_checkpoint_under_an_earlier_config_is_set_aside(tiny_params, tmp_path: Path, change: str, capsys):
    """Issue 26: a run killed under one config, then a run-cache restore (which trains nothing),
    leaves its checkpoint; the next legitimate change must train, not stop at it. It can never be
    resumed (another config is another run), so it is set aside, bytes kept, and the run starts fresh."""
    prepared = write_prepared(tmp_path / "prepared")
    params = parse_params(tiny_params)
    run = params.first_run(VARIANT)
    ctx = train.make_context(params.resolve(VARIANT), load_meta(prepared), Shard(), torch.device("cpu"))
    path = tmp_path / "checkpoints" / VARIANT / "seed0.pt"
    checkpoint.save(path, train.run_identity(params.resolve(VARIANT), run, prepared, ctx), {"epoch": 1})
    before = path.read_bytes()
    if change == "lr":
        tiny_params["studies"]["s2_cnn"][tiny_params["scale"]]["train"]["lr"] = 0.5
    elif change == "rate":
        tiny_params["variants"][VARIANT]["p"] = "fixed_p.none"
    else:
        tiny_params["studies"]["s2_cnn"][tiny_params["scale"]]["train_images"] = 100
    _train(parse_params(tiny_params), tmp_path, tmp_path / "checkpoints", seeds=[0])
    assert f"{path}: this run's checkpoint under other params" in capsys.readouterr().out
    assert (path.parent / "seed0.pt.stale").read_bytes() == before
    assert (tmp_path / "metrics" / "train" / VARIANT / "seed0.json").exists()  # trained from scratch


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
    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)  # epoch 1 is checkpointed before epoch 2 diverges
    params = parse_params(_epochs(tiny_params, 3))
    write_prepared(tmp_path / "prepared")
    good = tmp_path / "metrics" / "train" / VARIANT / "seed0.json"
    good.parent.mkdir(parents=True)
    good.write_text('{"earlier": "good"}\n')
    steps_per_epoch = 120 // params.train_config(VARIANT).batch_size
    real_create = train.create_model_for

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

    monkeypatch.setattr(train, "create_model_for", create_model_that_diverges)
    saved = tmp_path / "checkpoints" / VARIANT / "seed0.pt"
    with pytest.raises(DroplabError) as error:
        _train(params, tmp_path, tmp_path / "checkpoints")
    message = str(error.value)
    assert f"{VARIANT} seed 0: the training loss became nan at epoch 2, step 2 of {steps_per_epoch}" in message
    assert "Try a lower learning rate (studies.s2_cnn.cpu.train.lr" in message and f"kept in {saved}" in message
    assert torch.load(saved, weights_only=True)["epoch"] == 1
    assert good.read_text() == '{"earlier": "good"}\n'
    assert not (tmp_path / "models").exists()
    assert json.loads(good.read_text()) == {"earlier": "good"}


def test_sigterm_mid_training_ends_in_one_line_and_keeps_the_checkpoint(tiny_params, tmp_path: Path):
    """What `timeout` or a cancelled CI job sends: the stage process (no DVC around it) stops like
    after Ctrl-C, with exit 2, one line, no temporary file, and the last finished epoch's checkpoint."""
    root = tmp_path / "project"
    write_prepared(root / "data" / "prepared", n_train=200)
    write_params(root, _epochs(tiny_params, 1000))
    saved = root / "checkpoints" / VARIANT / "seed0.pt"
    env = {**os.environ, "DROPLAB_CHECKPOINT_SECONDS": "0"}
    seeds = ",".join(map(str, SEEDS))
    process = subprocess.Popen([sys.executable, str(REPO / "stages" / "train.py"), VARIANT, "--seeds", seeds],
                               cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 300
        while not saved.exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 2, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith("droplab train: error: interrupted (SIGTERM)"), stderr[-3000:]
    assert "Traceback" not in stderr
    assert not [path for path in root.rglob("*") if path.name.endswith(".tmp")]
    assert torch.load(saved, weights_only=True)["epoch"] >= 1
    assert not (root / "models").exists()  # no seed finished: nothing written but the checkpoint
