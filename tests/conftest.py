"""Shared fixtures: the real params.yaml, shrunk (never mocked), and small IDX datasets."""

from __future__ import annotations

import copy
import gzip
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def shrink(raw: dict) -> dict:
    """The real params.yaml at a size that trains in seconds: a few hundred images, one epoch."""
    raw = copy.deepcopy(raw)
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


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an unsigned-byte array in the IDX format, independently of droplab's reader."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_gz(path: Path, array: np.ndarray) -> Path:
    path.write_bytes(gzip.compress(idx_bytes(array)))
    return path


@pytest.fixture
def fake_mnist(tmp_path: Path) -> dict:
    """A small MNIST-layout dataset (train 120, test 40, 28x28, 10 classes) as IDX .gz files."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (120, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.arange(120, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.arange(40, dtype=np.uint8) % 10,
    }
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, array in arrays.items():
        write_idx_gz(raw / name, array)
    return {"dir": raw, "arrays": arrays}
