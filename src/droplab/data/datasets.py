"""The datasets droplab knows: their official files, pinned digests, mirrors and formats.

A file is pinned by SHA-256 of its bytes as published, except Fashion-MNIST, which is pinned
by SHA-256 of its *decompressed* content because Debian recompressed its copy: the .gz bytes
differ from the official files, what they hold does not.

Users can declare more datasets in params.yaml (`extra_datasets`: a lab mirror, a private
copy) in one of the formats below; they are pinned the same way, in a tracked file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Format = Literal["idx", "cifar10_binary", "tiny_imagenet"]

# The raw files each format needs, by role.
FORMAT_ROLES: dict[str, tuple[str, ...]] = {
    "idx": ("train_images", "train_labels", "test_images", "test_labels"),
    "cifar10_binary": ("archive",),
    "tiny_imagenet": ("archive",),
}


@dataclass(frozen=True)
class RawFile:
    name: str
    sha256: str | None  # None only where no SHA-256 was ever published (see md5)
    size: int | None = None  # bytes as downloaded; None where unknown (recompressed copies)
    md5: str | None = None
    content_digest: bool = False  # digests cover the gunzipped content, not the bytes

    def __post_init__(self) -> None:
        if self.sha256 is None and self.md5 is None:
            raise ValueError(f"{self.name}: pin at least one digest")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    format: Format
    files: dict[str, RawFile]  # role -> file
    urls: tuple[str, ...]  # base URLs (mirrors), tried in order; a file's URL is base + name
    system_dir: str | None = None
    classes: tuple[str, ...] = field(default=())  # empty: the archive names them


DIGITS = tuple(str(digit) for digit in range(10))
# MNIST's file names, role by role, which Fashion-MNIST kept so that it drops in for MNIST
IDX_NAMES = {"train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
             "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}


def _idx_files(pins: dict[str, tuple[str, int | None]], content_digest: bool = False) -> dict[str, RawFile]:
    """The four files of an idx dataset under MNIST's names, pinned by `pins`: role -> (sha256, size)."""
    return {role: RawFile(IDX_NAMES[role], sha256, size, content_digest=content_digest)
            for role, (sha256, size) in pins.items()}


FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    format="idx",
    files=_idx_files({
        "train_images": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", None),
        "train_labels": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", None),
        "test_images": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", None),
        "test_labels": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", None),
    }, content_digest=True),
    urls=("https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",),
    system_dir="/usr/share/datasets/fashion-mnist",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)

MNIST = DatasetSpec(
    name="mnist",
    format="idx",
    files=_idx_files({
        "train_images": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        "train_labels": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        "test_images": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        "test_labels": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    }),
    # yann.lecun.com is the origin but serves plain HTTP only; these mirrors serve the same bytes.
    urls=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    classes=DIGITS,
)

CIFAR10 = DatasetSpec(
    name="cifar10",
    format="cifar10_binary",
    files={"archive": RawFile("cifar-10-binary.tar.gz",
                              "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171)},
    urls=("https://www.cs.toronto.edu/~kriz/",),
)

# Stanford publishes only an MD5 for this archive; size and MD5 pin it until a SHA-256 is
# recorded from a verified download (the download stage prints it).
TINY_IMAGENET = DatasetSpec(
    name="tiny_imagenet",
    format="tiny_imagenet",
    files={"archive": RawFile("tiny-imagenet-200.zip", None, 248100043, md5="90528d7ca1a48142e341f4ef8d21d0de")},
    urls=("https://cs231n.stanford.edu/",),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (FASHION_MNIST, MNIST, CIFAR10, TINY_IMAGENET)}
