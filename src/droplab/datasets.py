"""The datasets droplab knows: their files, pinned hashes, sources and shapes.

Hashes are SHA-256 of the *decompressed* IDX content, because Debian recompressed its copy of
Fashion-MNIST: the .gz bytes differ from the official files but what they hold does not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawFile:
    name: str
    sha256: str  # of the decompressed content
    size: int  # decompressed bytes


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: dict[str, RawFile]  # role ("train_images", ...) -> file
    urls: tuple[str, ...]  # base URLs, tried in order; a file's URL is base + name
    system_dir: str | None
    classes: tuple[str, ...]


FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    files={
        "train_images": RawFile(
            "train-images-idx3-ubyte.gz",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            47040016,
        ),
        "train_labels": RawFile(
            "train-labels-idx1-ubyte.gz",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            60008,
        ),
        "test_images": RawFile(
            "t10k-images-idx3-ubyte.gz",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            7840016,
        ),
        "test_labels": RawFile(
            "t10k-labels-idx1-ubyte.gz",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            10008,
        ),
    },
    urls=(
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
    system_dir="/usr/share/datasets/fashion-mnist",
    classes=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (FASHION_MNIST,)}
