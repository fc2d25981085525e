"""Raw files -> one compact uint8 array per split, labels, and normalization statistics.

Every dataset ends in the same layout (N, C, H, W) uint8 plus int64 labels, so the stages
after this one never need to know which dataset they are training on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from droplab.atomic import atomic_path, write_json
from droplab.datasets import DatasetSpec
from droplab.errors import DroplabError
from droplab.idx import IDXError, read_idx

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Arrays:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64


def load_idx_pair(images_path: Path, labels_path: Path, num_classes: int) -> Arrays:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise IDXError(f"{images_path}: expected 3 dimensions (N, H, W), header declares {images.shape}")
    if labels.ndim != 1:
        raise IDXError(f"{labels_path}: expected 1 dimension (N,), header declares {labels.shape}")
    if len(images) != len(labels):
        raise IDXError(
            f"{labels_path}: {len(labels)} labels but {images_path.name} holds {len(images)} images"
        )
    if labels.size and labels.max() >= num_classes:
        raise IDXError(f"{labels_path}: label {labels.max()} outside the class range 0..{num_classes - 1}")
    return Arrays(images[:, None, :, :].copy(), labels.astype(np.int64))


def split_train_val(full: Arrays, val_size: int, seed: int) -> tuple[Arrays, Arrays]:
    """A seeded random split of the official training set."""
    if val_size >= len(full.labels):
        raise DroplabError(f"data.val_size {val_size} must be smaller than the {len(full.labels)} training images")
    order = np.random.default_rng(seed).permutation(len(full.labels))
    val_idx, train_idx = np.sort(order[:val_size]), np.sort(order[val_size:])
    return subset(full, train_idx), subset(full, val_idx)


def subset(arrays: Arrays, index: np.ndarray) -> Arrays:
    return Arrays(arrays.images[index], arrays.labels[index])


def limit(arrays: Arrays, count: int | None, seed: int) -> Arrays:
    """A seeded subset of `count` images, for CPU-scale runs; None keeps everything."""
    if count is None or count >= len(arrays.labels):
        return arrays
    index = np.sort(np.random.default_rng(seed).permutation(len(arrays.labels))[:count])
    return subset(arrays, index)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of images scaled to [0, 1], in float64 for exactness."""
    scaled = images.astype(np.float64) / 255.0
    axes = (0, 2, 3)
    return scaled.mean(axis=axes).tolist(), scaled.std(axis=axes).tolist()


def prepare(spec: DatasetSpec, raw_dir: Path, out_dir: Path, val_size: int, split_seed: int,
            train_limit: int | None, test_limit: int | None = None) -> dict:
    """Write out_dir/arrays.npz and out_dir/meta.json; return the meta."""
    num_classes = len(spec.classes)
    files = {role: raw_dir / raw.name for role, raw in spec.files.items()}
    full = load_idx_pair(files["train_images"], files["train_labels"], num_classes)
    test = load_idx_pair(files["test_images"], files["test_labels"], num_classes)
    train, val = split_train_val(full, val_size, split_seed)
    train = limit(train, train_limit, split_seed + 1)
    test = limit(test, test_limit, split_seed + 2)
    mean, std = channel_stats(train.images)
    splits = {"train": train, "val": val, "test": test}
    meta = {
        "dataset": spec.name,
        "classes": list(spec.classes),
        "input_shape": list(train.images.shape[1:]),
        "mean": mean,
        "std": std,
        "sizes": {name: int(len(arrays.labels)) for name, arrays in splits.items()},
    }
    with atomic_path(out_dir / "arrays.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{f"{name}_{kind}": getattr(arrays, kind)
                                for name, arrays in splits.items() for kind in ("images", "labels")})
    write_json(out_dir / "meta.json", meta)
    return meta
