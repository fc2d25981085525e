"""Shared fixtures: the real params.yaml, shrunk (never mocked), and a small MNIST-format dataset."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from synthetic import mnist_arrays, write_mnist

REPO = Path(__file__).resolve().parents[1]


def shrink(raw: dict, keep: Iterable[str] | None = None) -> dict:
    """The real params.yaml at a size that trains in seconds: a few hundred images, one epoch, two seeds.

    `keep` names the variants to keep (all by default); studies lose the others, and a study
    left empty goes.
    """
    raw = copy.deepcopy(raw)
    if keep is not None:
        kept = set(keep)
        raw["variants"] = {name: spec for name, spec in raw["variants"].items() if name in kept}
        studies = {name: {**study, "variants": [v for v in study["variants"] if v in raw["variants"]]}
                   for name, study in raw["studies"].items()}
        raw["studies"] = {name: study for name, study in studies.items() if study["variants"]}
    for study in raw["studies"].values():
        study["seeds"] = min(study.get("seeds", 1), 2)  # still more than one: the statistics need two
    raw["data"].update(train_limit=300, val_size=200, test_limit=500)
    raw["train"].update(epochs=1, batch_size=50)
    for spec in raw["variants"].values():
        overrides = spec.get("train", {})
        overrides.update({key: value for key, value in (("epochs", 1), ("batch_size", 50)) if key in overrides})
    return raw


@pytest.fixture
def real_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def tiny_params(real_params: dict) -> dict:
    return shrink(real_params)


@pytest.fixture
def fake_mnist(tmp_path: Path) -> dict:
    """A small MNIST-layout dataset (train 120, test 40, 28x28, 10 classes) as IDX .gz files."""
    arrays = mnist_arrays()
    write_mnist(tmp_path / "raw", arrays)
    return {"dir": tmp_path / "raw", "arrays": arrays}
