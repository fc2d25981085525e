from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from droplab.data.datasets import FASHION_MNIST
from droplab.data.prepare import Arrays, channel_stats, limit, prepare, sample_index, split_train_val
from droplab.errors import DroplabError
from droplab.records import load_meta


def _arrays(n: int) -> Arrays:
    images = np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(4, axis=2).repeat(4, axis=3)
    return Arrays(images, np.arange(n, dtype=np.int64))


def test_split_is_seeded_disjoint_and_complete():
    full = _arrays(100)
    train, val = split_train_val(full, 30, seed=3)
    again_train, again_val = split_train_val(full, 30, seed=3)
    other_train, _ = split_train_val(full, 30, seed=4)
    np.testing.assert_array_equal(train.labels, again_train.labels)
    np.testing.assert_array_equal(val.labels, again_val.labels)
    assert not np.array_equal(train.labels, other_train.labels)
    assert len(val.labels) == 30 and len(train.labels) == 70
    assert sorted(np.concatenate([train.labels, val.labels]).tolist()) == list(range(100))
    np.testing.assert_array_equal(train.images[:, 0, 0, 0], train.labels)  # images follow their labels


def test_split_refuses_a_validation_set_as_large_as_the_data():
    with pytest.raises(DroplabError, match="data.val_size 100"):
        split_train_val(_arrays(100), 100, seed=0)


def test_limit_is_a_seeded_subset():
    full = _arrays(100)
    first, second = limit(full, 10, seed=0), limit(full, 10, seed=0)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert len(first.labels) == 10 and set(first.labels) <= set(full.labels)
    assert limit(full, None, seed=0) is full


@pytest.mark.parametrize("seed, expected", [
    (1, [1, 7, 10, 16, 18]),  # prepare's train_limit draw under split_seed 0
    ([0, 0, 1], [1, 9, 12, 17, 19]),  # a run's training subset: split_seed 0, the train split, run seed 1
    ([0, 2], [0, 8, 10, 15, 18]),  # a run's test subset: split_seed 0, the test split
])
def test_both_subset_draws_pick_the_images_they_always_picked(seed, expected):
    """prepare.limit and device_data.subsets share sample_index, each keeping its own seeding:
    the indices are those the two hand-written draws gave before (pinned here), so no result moves."""
    assert sample_index(20, 5, seed).tolist() == expected
    assert sample_index(20, None, seed) is None and sample_index(20, 20, seed) is None


def test_limit_keeps_the_images_its_seed_draws():
    np.testing.assert_array_equal(limit(_arrays(20), 5, seed=1).labels, [1, 7, 10, 16, 18])


def test_channel_stats_match_numpy():
    images = np.random.default_rng(0).integers(0, 256, (20, 3, 5, 5), dtype=np.uint8)
    mean, std = channel_stats(images)
    for channel in range(3):
        values = images[:, channel].ravel() / 255.0
        assert mean[channel] == pytest.approx(float(np.mean(values)), abs=1e-12)
        assert std[channel] == pytest.approx(float(np.std(values)), abs=1e-12)


def test_prepare_writes_the_common_layout(fake_mnist, tmp_path: Path):
    spec = replace(FASHION_MNIST, name="fake")
    meta, notes = prepare(spec, fake_mnist["dir"], tmp_path / "out", val_size=20, split_seed=0, train_limit=50)
    assert notes == ()
    assert meta.sizes == {"train": 50, "val": 20, "test": 40}
    assert meta.input_shape == [1, 28, 28]
    with np.load(tmp_path / "out" / "arrays.npz") as arrays:
        assert arrays["train_images"].dtype == np.uint8 and arrays["train_images"].shape == (50, 1, 28, 28)
        assert arrays["train_labels"].dtype == np.int64
        np.testing.assert_array_equal(arrays["test_images"][:, 0], fake_mnist["arrays"]["t10k-images-idx3-ubyte.gz"])
        train_images = arrays["train_images"]
    assert meta.mean[0] == pytest.approx(float(train_images.mean() / 255.0))
    assert load_meta(tmp_path / "out") == meta
