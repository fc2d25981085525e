"""Training logged through DVCLive, and each run's test confusion matrix and per-class F1,
checked against an independent pass over the saved model."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score

from droplab.config import parse_params
from droplab.confusion_file import read_confusion
from droplab.errors import DroplabError
from droplab.models.registry import create_model_for
from droplab.records import load_meta
from droplab.training import live, train
from droplab.training.device_data import BatchTransform, load_splits

from synthetic import write_prepared

VARIANT = "s2_mlp"


def _trained(tiny_params: dict, tmp_path: Path, monkeypatch, epochs: int = 3) -> tuple:
    """One seed trained with tmp_path as the working directory: DVCLive must write nothing there."""
    home = tiny_params["studies"][VARIANT][tiny_params["scale"]].setdefault("train", {})
    home.update({"epochs": epochs, "schedule": {"name": "constant"}})
    params = parse_params(tiny_params)
    prepared = write_prepared(tmp_path / "prepared")
    config = params.resolve(VARIANT)
    monkeypatch.chdir(tmp_path)
    results = train.main(config, [0], prepared, tmp_path / "models", tmp_path / "metrics", tmp_path / "plots")
    return config, prepared, results[0], tmp_path / "plots/train" / VARIANT / "seed0"


def test_every_epoch_is_logged_through_dvclive_with_the_epoch_as_step(tiny_params, tmp_path: Path, monkeypatch):
    config, _, result, folder = _trained(tiny_params, tmp_path, monkeypatch)
    summary = json.loads((folder / "metrics.json").read_text())
    assert summary["step"] == 3 and set(summary) == {"train", "val", "lr", "step"}
    assert set(summary["train"]) == set(summary["val"]) == {"loss", "acc1", "acc5"}
    for name in live.LOGGED.values():
        rows = (folder / "plots/metrics" / f"{name}.tsv").read_text().splitlines()
        assert rows[0] == f"step\t{name.rsplit('/', 1)[-1]}" and [r.split("\t")[0] for r in rows[1:]] == ["1", "2", "3"]
    curves = live.read_curves(folder)
    assert curves["epoch"].tolist() == [1, 2, 3]
    assert curves["lr"].tolist() == [config.train.lr] * 3  # constant schedule: the configured lr every epoch
    best = curves.set_index("epoch").loc[result.best_epoch]
    assert best["val_acc1"] == result.val.acc1 and best["train_loss"] == result.train.loss
    assert best["val_acc1"] == curves["val_acc1"].max()  # the kept epoch is the best validation epoch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics", "models", "plots", "prepared"]  # no dvc.yaml
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(
        ["metrics.json", live.CONFUSION, *(f"plots/metrics/{name}.tsv" for name in live.LOGGED.values())])
    assert "timestamp" not in (folder / "plots/metrics/lr.tsv").read_text()


def test_the_test_confusion_matrix_and_per_class_f1_match_an_independent_pass(tiny_params, tmp_path: Path,
                                                                             monkeypatch):
    config, prepared, result, folder = _trained(tiny_params, tmp_path, monkeypatch, epochs=2)
    meta = load_meta(prepared)
    test = load_splits(prepared / "arrays.npz", torch.device("cpu"), meta)["test"]
    model = create_model_for(config.spec, config.rates, meta)
    model.load_state_dict(torch.load(tmp_path / "models" / VARIANT / "seed0.pt", weights_only=True)["state_dict"])
    model.eval()
    transform = BatchTransform(meta.mean, meta.std, config.spec.normalize, torch.device("cpu"))
    with torch.no_grad():
        predicted = model(transform(test.images)).argmax(1).numpy()
    classes = list(range(len(meta.classes)))
    expected = confusion_matrix(test.labels.numpy(), predicted, labels=classes)
    assert np.array_equal(read_confusion(folder / live.CONFUSION, meta.classes), expected)
    f1 = f1_score(test.labels.numpy(), predicted, labels=classes, average=None, zero_division=0)
    assert list(result.test.f1_per_class) == meta.classes
    assert list(result.test.f1_per_class.values()) == pytest.approx(f1.tolist(), abs=1e-6)
    assert result.test.f1_macro == pytest.approx(f1.mean(), abs=1e-6)
    rows = (folder / live.CONFUSION).read_text().splitlines()
    assert rows[0] == "actual\tpredicted" and len(rows) == 1 + len(test)  # one row per test image


def test_a_failed_run_puts_the_earlier_curves_back(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "seed0"
    (folder / "plots/metrics").mkdir(parents=True)
    (folder / "metrics.json").write_text('{"step": 7}\n')
    with pytest.raises(RuntimeError, match="diverged"), live.earlier_kept(folder), live.run_log(folder) as log:
        log.epoch({"epoch": 1, **dict.fromkeys(live.LOGGED, 0.5)})
        assert json.loads((folder / "metrics.json").read_text())["step"] == 1  # written while it runs
        raise RuntimeError("diverged")
    assert (folder / "metrics.json").read_text() == '{"step": 7}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0"]


def test_after_a_killed_run_the_copy_aside_is_the_one_kept(tmp_path: Path):
    """A kill leaves the good folder aside and a partial one in place: the next run keeps the good one."""
    folder, aside = tmp_path / "seed0", tmp_path / "seed0.earlier"
    folder.mkdir()
    (folder / "metrics.json").write_text('{"step": 1, "partial": true}\n')
    aside.mkdir()
    (aside / "metrics.json").write_text('{"step": 7}\n')
    with pytest.raises(RuntimeError), live.earlier_kept(folder):
        assert not folder.exists()  # the partial folder went
        raise RuntimeError("failed again")
    assert (folder / "metrics.json").read_text() == '{"step": 7}\n' and not aside.exists()


def test_a_confusion_file_naming_an_unknown_class_is_refused(tmp_path: Path):
    path = tmp_path / live.CONFUSION
    path.write_text("actual\tpredicted\ncat\tdog\ncat\tbird\n")
    assert read_confusion(path, ["cat", "dog", "bird"]).tolist() == [[0, 1, 1], [0, 0, 0], [0, 0, 0]]
    with pytest.raises(DroplabError, match=rf"{path}: class 'bird' is not one of meta.json's classes"):
        read_confusion(path, ["cat", "dog"])


def _git_dvc_repo(root: Path) -> None:
    """A committed git + DVC repository, as the one `dvc repro` runs a stage in."""
    root.mkdir()
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        subprocess.run(command, cwd=root, check=True, capture_output=True)


def test_inside_a_dvc_stage_dvclive_writes_only_the_run_folder_in_droplab_s_bytes(tmp_path: Path, monkeypatch):
    """Through DVCLive's public API inside a DVC repository (DVC_ROOT set, as `dvc repro` sets it):
    no dvc.yaml, no experiment, nothing staged; the files hold the rounded values, the epoch as step."""
    repo = tmp_path / "repo"
    _git_dvc_repo(repo)
    monkeypatch.chdir(repo)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    rows = [{"epoch": epoch, **{key: 0.1234567 * epoch for key in live.LOGGED}} for epoch in (1, 2)]
    with live.run_log(repo / "run") as log:
        for row in rows:
            log.epoch(row)
    files = sorted(p.relative_to(repo / "run").as_posix() for p in (repo / "run").rglob("*") if p.is_file())
    assert files == sorted(["metrics.json", *(f"plots/metrics/{name}.tsv" for name in live.LOGGED.values())])
    summary = json.loads((repo / "run/metrics.json").read_text())
    assert summary == {"train": {"loss": 0.246913, "acc1": 0.246913, "acc5": 0.246913},
                       "val": {"loss": 0.246913, "acc1": 0.246913, "acc5": 0.246913}, "lr": 0.246913, "step": 2}
    assert (repo / "run/plots/metrics/val/acc1.tsv").read_text() == "step\tacc1\n1\t0.123457\n2\t0.246913\n"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status == "?? run/\n"  # untracked, not staged, and no dvc.yaml beside it
