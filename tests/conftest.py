"""Shared fixtures: the real params.yaml, shrunk (never mocked), and a small MNIST-format dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from droplab.pipeline.tiny import shrink

from synthetic import mnist_arrays, write_mnist

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/tiny from this run's end-to-end clone (after a deliberate change)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, each module keeping its order: under pytest-xdist (`make test`) the
    long end-to-end runs start at once and the fast tests fill in beside them, rather than a long
    run starting last while the other worker idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
