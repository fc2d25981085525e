"""Small datasets in the exact original on-disk formats, built from the format specifications.

Written independently of droplab's parsers so that a parser bug cannot hide behind a matching fixture bug.
Every builder is deterministic given its seed, and archives are byte-identical across runs (fixed mtimes).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypedDict

import numpy as np
from PIL import Image

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

CIFAR10_TOP = "cifar-10-batches-bin"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
CIFAR10_RECORD = 1 + 3 * 32 * 32

TINY_TOP = "tiny-imagenet-200"
# Real Tiny-ImageNet classes with their real words.txt entries.
TINY_WORDS = {
    "n01443537": "goldfish, Carassius auratus",
    "n01629819": "European fire salamander, Salamandra salamandra",
    "n01641577": "bullfrog, Rana catesbeiana",
    "n01644900": "tailed frog, bell toad, ribbed toad, tailed toad, Ascaphus trui",
    "n01698640": "American alligator, Alligator mississipiensis",
    "n01742172": "boa constrictor, Constrictor constrictor",
    "n01768244": "trilobite",
    "n01770393": "scorpion",
    "n01774384": "black widow, Latrodectus mactans",
    "n01774750": "tarantula",
}
# words.txt covers all of WordNet (82k lines), not just the 200 classes: keep a few unrelated ids.
TINY_UNRELATED_WORDS = {
    "n00001740": "entity",
    "n00001930": "physical entity",
    "n00002137": "abstraction, abstract entity",
}

# Well-separated mean colours, one per class, so a model can learn the synthetic images.
_PALETTE = np.array(
    [
        (220, 40, 40),
        (40, 220, 40),
        (40, 40, 220),
        (220, 220, 40),
        (220, 40, 220),
        (40, 220, 220),
        (230, 230, 230),
        (25, 25, 25),
        (230, 130, 30),
        (130, 30, 230),
    ],
    dtype=np.int16,
)


def _class_images(rng: np.random.Generator, labels: np.ndarray, side: int) -> np.ndarray:
    """(N, side, side, 3) uint8 images: the class's palette colour plus noise."""
    noise = rng.normal(0.0, 20.0, (len(labels), side, side, 3))
    return np.clip(_PALETTE[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)


def _covering_labels(rng: np.random.Generator, count: int, n_classes: int) -> np.ndarray:
    """Shuffled labels that include every class whenever `count >= n_classes`."""
    return rng.permutation(np.arange(count) % n_classes).astype(np.uint8)


def _check_known(option: str, names: tuple[str, ...], members: set[str]) -> None:
    """Fail loudly on a typo in a member name, instead of silently building an unmodified archive."""
    unknown = sorted(set(names) - members)
    if unknown:
        raise ValueError(f"{option} names unknown members: {unknown}")


# --- MNIST -------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an unsigned-byte array in the IDX format: 0, 0, type 0x08, ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_gz(path: Path, array: np.ndarray) -> Path:
    path.write_bytes(gzip.compress(idx_bytes(array), mtime=0))
    return path


def mnist_arrays(n_train: int = 120, n_test: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """Random 28x28 images and labels (arange % 10), keyed by the official MNIST file names."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.arange(n_test, dtype=np.uint8) % 10,
    }


def write_mnist(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write each array as a gzip-compressed IDX file named by its key."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx_gz(directory / name, array)


# --- CIFAR-10 (binary version) -----------------------------------------------------------------


def cifar10_arrays(per_batch: int = 20, n_test: int = 20, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Batch file name -> (images (N,3,32,32) uint8, labels (N,) uint8), every class in every batch."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name in CIFAR10_BATCHES:
        labels = _covering_labels(rng, n_test if name == "test_batch.bin" else per_batch, 10)
        arrays[name] = (_class_images(rng, labels, 32).transpose(0, 3, 1, 2).copy(), labels)
    return arrays


def cifar10_record_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """3073-byte records: label byte, then the red, green and blue 32x32 planes, each row-major."""
    planes = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(labels), 3 * 32 * 32)
    return np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], planes], axis=1).tobytes()


def _tar_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)  # added with addfile, so the name is kept verbatim ("../x", "/x")
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


@contextmanager
def _tar_gz(path: Path) -> Iterator[tarfile.TarFile]:
    """A GNU tar inside a gzip stream with a fixed mtime, so archives are byte-identical across runs."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as stream,
        tarfile.open(fileobj=stream, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        yield tar


def write_cifar10_tar(
    path: Path,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    extra_members: dict[str, bytes] | None = None,
    omit: tuple[str, ...] = (),
) -> Path:
    """Write `cifar-10-binary.tar.gz`'s layout; `omit` drops full member names, `extra_members` adds raw ones.

    The top directory entry is named "cifar-10-batches-bin" (as tarfile reports it) for `omit`.
    """
    members = {f"{CIFAR10_TOP}/batches.meta.txt": ("\n".join(CIFAR10_CLASSES) + "\n\n\n").encode()}
    members |= {f"{CIFAR10_TOP}/{name}": cifar10_record_bytes(*arrays[name]) for name in arrays}
    members[f"{CIFAR10_TOP}/readme.html"] = (
        b"<meta HTTP-EQUIV='REFRESH' content='0; url=https://www.cs.toronto.edu/'>\n"
    )
    _check_known("omit", omit, set(members) | {CIFAR10_TOP})
    with _tar_gz(path) as tar:
        if CIFAR10_TOP not in omit:
            directory = tarfile.TarInfo(CIFAR10_TOP)
            directory.type, directory.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(directory)
        for name, data in (members | (extra_members or {})).items():
            if name not in omit:
                _tar_bytes(tar, name, data)
    return path


def tar_with_symlink(path: Path, link_name: str, target: str) -> Path:
    """Write a tar.gz holding one symlink member `link_name` -> `target`, for link-escape tests."""
    link = tarfile.TarInfo(link_name)
    link.type, link.linkname, link.mode = tarfile.SYMTYPE, target, 0o777
    with _tar_gz(path) as tar:
        tar.addfile(link)
    return path


# --- Tiny-ImageNet -----------------------------------------------------------------------------


class TinyImageNet(TypedDict):
    """What `write_tiny_imagenet_zip` wrote; member names are full zip paths, omitted members left out."""

    wnids: list[str]  # in wnids.txt order
    train: dict[str, str]  # train JPEG member (corrupt ones included) -> wnid
    val: dict[str, str]  # val JPEG member (corrupt ones included) -> wnid
    test: list[str]  # unlabelled test JPEG members
    images: dict[str, np.ndarray]  # every JPEG member actually written (not omitted or corrupt) -> decoded RGB


def tiny_imagenet_wnids(n_classes: int = 4) -> list[str]:
    """The wnids in wnids.txt order: real ids, deliberately not sorted (the real wnids.txt is not)."""
    if not 2 <= n_classes <= len(TINY_WORDS):
        raise ValueError(f"n_classes must be in 2..{len(TINY_WORDS)}")
    chosen = list(TINY_WORDS)[:n_classes]
    return chosen[1:] + chosen[:1]


def _jpeg(pixels: np.ndarray, grayscale: bool) -> bytes:
    image = Image.fromarray(pixels, "RGB")
    buffer = io.BytesIO()
    (image.convert("L") if grayscale else image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_tiny_imagenet_zip(
    path: Path,
    *,
    n_classes: int = 4,
    per_class: int = 5,
    n_val: int = 8,
    n_test: int = 3,
    seed: int = 0,
    grayscale: tuple[str, ...] = (),
    omit: tuple[str, ...] = (),
    corrupt: tuple[str, ...] = (),
    extra_members: dict[str, bytes] | None = None,
) -> TinyImageNet:
    """Write `tiny-imagenet-200.zip`'s layout with class-coloured 64x64 JPEGs; describe what was written.

    `grayscale` stores members as mode "L" JPEGs (the real set has some), `omit` drops members, `corrupt`
    replaces members' bytes with non-JPEG garbage, `extra_members` are written under their raw names.
    """
    rng = np.random.default_rng(seed)
    wnids = tiny_imagenet_wnids(n_classes)
    top = TINY_TOP
    texts: dict[str, str] = {
        f"{top}/wnids.txt": "".join(f"{wnid}\n" for wnid in wnids),
        f"{top}/words.txt": "".join(
            f"{wnid}\t{words}\n" for wnid, words in sorted((TINY_WORDS | TINY_UNRELATED_WORDS).items())
        ),
    }
    pixels: dict[str, np.ndarray] = {}
    train: dict[str, str] = {}
    directories = [f"{top}/{folder}" for folder in ("", "train/", "val/", "val/images/", "test/", "test/images/")]
    for label, wnid in enumerate(wnids):
        directories += [f"{top}/train/{wnid}/", f"{top}/train/{wnid}/images/"]
        boxes = []
        for i, image in enumerate(_class_images(rng, np.full(per_class, label), 64)):
            member = f"{top}/train/{wnid}/images/{wnid}_{i}.JPEG"
            pixels[member], train[member] = image, wnid
            boxes.append(f"{wnid}_{i}.JPEG\t{i}\t{i + 1}\t{63 - i}\t{62 - i}\n")
        texts[f"{top}/train/{wnid}/{wnid}_boxes.txt"] = "".join(boxes)
    val: dict[str, str] = {}
    annotations = []
    val_labels = _covering_labels(rng, n_val, n_classes)
    for i, (label, image) in enumerate(zip(val_labels, _class_images(rng, val_labels, 64), strict=True)):
        member = f"{top}/val/images/val_{i}.JPEG"
        pixels[member], val[member] = image, wnids[label]
        annotations.append(f"val_{i}.JPEG\t{wnids[label]}\t{i}\t{i + 2}\t{60 - i}\t{61 - i}\n")
    texts[f"{top}/val/val_annotations.txt"] = "".join(annotations)
    test = [f"{top}/test/images/test_{i}.JPEG" for i in range(n_test)]
    pixels |= dict(zip(test, _class_images(rng, rng.integers(0, n_classes, n_test), 64), strict=True))

    known = set(texts) | set(pixels) | set(directories)
    _check_known("grayscale", grayscale, set(pixels))
    _check_known("corrupt", corrupt, set(pixels))
    _check_known("omit", omit, known)
    images: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for directory in directories:
            if directory not in omit:
                archive.mkdir(directory)
        for member, text in texts.items():
            if member not in omit:
                archive.writestr(zipfile.ZipInfo(member), text.encode(), compress_type=zipfile.ZIP_DEFLATED)
        for member, image in pixels.items():
            if member in omit:
                continue
            if member in corrupt:
                data = b"this is not a JPEG file\x00\xff" * 8
            else:
                data = _jpeg(image, member in grayscale)
                images[member] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            archive.writestr(zipfile.ZipInfo(member), data, compress_type=zipfile.ZIP_DEFLATED)
        for member, data in (extra_members or {}).items():
            archive.writestr(zipfile.ZipInfo(member), data, compress_type=zipfile.ZIP_DEFLATED)
    return TinyImageNet(
        wnids=wnids,
        train={member: wnid for member, wnid in train.items() if member not in omit},
        val={member: wnid for member, wnid in val.items() if member not in omit},
        test=[member for member in test if member not in omit],
        images=images,
    )


def write_prepared(root: Path, n_train: int = 120) -> Path:
    """data/prepared as the preprocess stage writes it: 28x28 grey images, learnable labels, 40 val and test."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("val", 40), ("test", 40)):
        labels = np.arange(n) % 10
        images = (rng.integers(0, 60, (n, 1, 28, 28)) + labels[:, None, None, None] * 19).astype(np.uint8)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels.astype(np.int64)
    root.mkdir(parents=True)
    np.savez(root / "arrays.npz", **arrays)
    meta = {"dataset": "fake", "classes": [str(i) for i in range(10)], "input_shape": [1, 28, 28],
            "mean": [0.4], "std": [0.3], "sizes": {"train": n_train, "val": 40, "test": 40}}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def draws(mean: float, sd: float, n: int = 5, seed: int = 0) -> list[float]:
    """n seeded normal draws: one metric over n seeds, for the statistics tests."""
    return list(np.random.default_rng(seed).normal(mean, sd, n))
