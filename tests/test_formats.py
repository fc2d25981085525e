"""MNIST, CIFAR-10 (binary) and Tiny-ImageNet: served over HTTP in their exact formats, ending in one layout.

The archives come from tests/synthetic.py, written from the format descriptions and not from
droplab's readers; the expected arrays are decoded here independently of them.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from droplab.data.archives import ArchiveError, read_tar_members
from droplab.data.cifar import read_cifar10_binary
from droplab.data.datasets import CIFAR10, MNIST, TINY_IMAGENET, DatasetSpec, RawFile
from droplab.data.download import fetch_dataset
from droplab.data.idx import IDXError
from droplab.data.prepare import prepare
from droplab.data.tiny_imagenet import read_tiny_imagenet
from droplab.data.transfer import Retry
from droplab.records import Meta, load_meta

from http_server import serve
from synthetic import (
    CIFAR10_CLASSES,
    CIFAR10_TOP,
    TINY_TOP,
    TINY_WORDS,
    cifar10_arrays,
    cifar10_record_bytes,
    mnist_arrays,
    tar_with_symlink,
    write_cifar10_tar,
    write_mnist,
    write_tiny_imagenet_zip,
)

FAST = Retry(attempts=2, backoff=0.01, timeout=5)


def pinned(spec: DatasetSpec, directory: Path, url: str) -> DatasetSpec:
    """`spec` with its real file names, pinned to the bytes the test built and served from `url`."""
    files = {}
    for role, raw in spec.files.items():
        data = (directory / raw.name).read_bytes()
        files[role] = RawFile(raw.name, hashlib.sha256(data).hexdigest(), len(data))
    return replace(spec, files=files, urls=(url,), system_dir=None)


def download_and_prepare(spec: DatasetSpec, served: Path, tmp_path: Path, val_size: int) -> tuple[dict, dict]:
    with serve(served) as server:
        spec = pinned(spec, served, server.url)
        fetch_dataset(spec, tmp_path / "raw" / spec.name, retry=FAST)
    meta, _ = prepare(spec, tmp_path / "raw" / spec.name, tmp_path / "prepared", val_size=val_size, split_seed=0,
                      train_limit=None)
    with np.load(tmp_path / "prepared" / "arrays.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    assert load_meta(tmp_path / "prepared") == meta
    return meta, arrays


def assert_common_layout(meta: Meta, arrays: dict, shape: list[int], classes: list[str]) -> None:
    assert meta.input_shape == shape and meta.classes == classes
    for split in ("train", "val", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        assert images.dtype == np.uint8 and list(images.shape[1:]) == shape
        assert labels.dtype == np.int64 and len(labels) == len(images) == meta.sizes[split]
        assert 0 <= labels.min() and labels.max() < len(classes)
    assert len(meta.mean) == len(meta.std) == shape[0]


def sorted_rows(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    """Image bytes with the label, order-free, to compare a split's content with what was written."""
    return sorted(bytes([label]) + image.tobytes() for image, label in zip(images, labels, strict=True))


# --- a good download of each dataset ends in the common layout -----------------------------------------------


def test_mnist_download_ends_in_the_common_layout(tmp_path: Path):
    written = mnist_arrays(n_train=60, n_test=20)
    write_mnist(tmp_path / "served", written)
    meta, arrays = download_and_prepare(MNIST, tmp_path / "served", tmp_path, val_size=10)
    assert_common_layout(meta, arrays, [1, 28, 28], list("0123456789"))
    np.testing.assert_array_equal(arrays["test_images"][:, 0], written["t10k-images-idx3-ubyte.gz"])
    assert meta.sizes == {"train": 50, "val": 10, "test": 20}


def test_cifar10_download_ends_in_the_common_layout(tmp_path: Path):
    written = cifar10_arrays(per_batch=12, n_test=15)
    (tmp_path / "served").mkdir()
    write_cifar10_tar(tmp_path / "served" / "cifar-10-binary.tar.gz", written)
    meta, arrays = download_and_prepare(CIFAR10, tmp_path / "served", tmp_path, val_size=10)
    assert_common_layout(meta, arrays, [3, 32, 32], list(CIFAR10_CLASSES))
    # The test split is test_batch.bin in order; train + val together are the five batches.
    np.testing.assert_array_equal(arrays["test_images"], written["test_batch.bin"][0])
    np.testing.assert_array_equal(arrays["test_labels"], written["test_batch.bin"][1])
    batches = [written[f"data_batch_{i}.bin"] for i in range(1, 6)]
    expected = sorted_rows(np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
    got = sorted_rows(np.concatenate([arrays["train_images"], arrays["val_images"]]),
                      np.concatenate([arrays["train_labels"], arrays["val_labels"]]))
    assert got == expected


def test_tiny_imagenet_download_ends_in_the_common_layout(tmp_path: Path):
    (tmp_path / "served").mkdir()
    grayscale = f"{TINY_TOP}/train/n01641577/images/n01641577_2.JPEG"
    written = write_tiny_imagenet_zip(tmp_path / "served" / "tiny-imagenet-200.zip", grayscale=(grayscale,))
    meta, arrays = download_and_prepare(TINY_IMAGENET, tmp_path / "served", tmp_path, val_size=4)
    names = [TINY_WORDS[wnid].split(",")[0] for wnid in written["wnids"]]
    assert_common_layout(meta, arrays, [3, 64, 64], names)
    # Official val (labelled by val_annotations.txt) becomes droplab's test split.
    val = written["val"]
    expected = sorted_rows(np.stack([written["images"][m].transpose(2, 0, 1) for m in val]),
                           np.array([written["wnids"].index(val[m]) for m in val]))
    assert sorted_rows(arrays["test_images"], arrays["test_labels"]) == expected
    train = written["train"]
    expected = sorted_rows(np.stack([written["images"][m].transpose(2, 0, 1) for m in train]),
                           np.array([written["wnids"].index(train[m]) for m in train]))
    got = sorted_rows(np.concatenate([arrays["train_images"], arrays["val_images"]]),
                      np.concatenate([arrays["train_labels"], arrays["val_labels"]]))
    assert got == expected
    assert meta.sizes == {"train": 16, "val": 4, "test": 8}


def test_a_grayscale_tiny_imagenet_jpeg_becomes_rgb(tmp_path: Path):
    member = f"{TINY_TOP}/train/n01641577/images/n01641577_0.JPEG"
    written = write_tiny_imagenet_zip(tmp_path / "t.zip", grayscale=(member,))
    raw = read_tiny_imagenet(tmp_path / "t.zip", workers=2)
    index = sorted(written["train"]).index(member)
    image = raw.train.images[index]
    assert image.shape == (3, 64, 64)
    np.testing.assert_array_equal(image[0], image[1])  # gray: three equal channels
    np.testing.assert_array_equal(image.transpose(1, 2, 0), written["images"][member])
    assert "images/s on 2 processes" in raw.notes[0]
    in_process = read_tiny_imagenet(tmp_path / "t.zip", workers=1)
    np.testing.assert_array_equal(in_process.train.images, raw.train.images)
    np.testing.assert_array_equal(in_process.test.labels, raw.test.labels)


# --- corrupt and hostile inputs are refused, naming the file --------------------------------------------------


def test_missing_val_annotations_is_named(tmp_path: Path):
    write_tiny_imagenet_zip(tmp_path / "t.zip", omit=(f"{TINY_TOP}/val/val_annotations.txt",))
    with pytest.raises(ArchiveError, match=f"t.zip: no member '{TINY_TOP}/val/val_annotations.txt'"):
        read_tiny_imagenet(tmp_path / "t.zip", workers=1)


def test_a_bad_jpeg_is_named(tmp_path: Path):
    member = f"{TINY_TOP}/val/images/val_3.JPEG"
    write_tiny_imagenet_zip(tmp_path / "t.zip", corrupt=(member,))
    with pytest.raises(ArchiveError, match=f"t.zip:{member}: not a decodable JPEG"):
        read_tiny_imagenet(tmp_path / "t.zip", workers=2)


@pytest.mark.parametrize("name", ["../evil.txt", f"{TINY_TOP}/../../evil.txt", "/etc/evil.txt"])
def test_zip_slip_members_are_refused(tmp_path: Path, name: str):
    write_tiny_imagenet_zip(tmp_path / "t.zip", extra_members={name: b"owned"})
    with pytest.raises(ArchiveError, match=f"t.zip: refused member '{name}'"):
        read_tiny_imagenet(tmp_path / "t.zip", workers=1)
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize("name", ["../evil.bin", "/tmp/evil.bin"])
def test_tar_path_traversal_is_refused(tmp_path: Path, name: str):
    write_cifar10_tar(tmp_path / "c.tar.gz", cifar10_arrays(per_batch=2, n_test=2), extra_members={name: b"x"})
    with pytest.raises(ArchiveError, match=f"c.tar.gz: refused member '{name}'"):
        read_cifar10_binary(tmp_path / "c.tar.gz")


def test_a_link_out_of_the_archive_is_refused_and_one_inside_is_not(tmp_path: Path):
    tar_with_symlink(tmp_path / "out.tar.gz", f"{CIFAR10_TOP}/link", "../../etc/passwd")
    with pytest.raises(ArchiveError, match="refused link .*points outside the archive"):
        read_tar_members(tmp_path / "out.tar.gz", set())
    tar_with_symlink(tmp_path / "in.tar.gz", f"{CIFAR10_TOP}/link", "../cifar-10-batches-bin/readme.html")
    assert read_tar_members(tmp_path / "in.tar.gz", set()) == {}


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_truncated_archive_is_named(tmp_path: Path, kind: str):
    if kind == "tar":
        path = write_cifar10_tar(tmp_path / "c.tar.gz", cifar10_arrays(per_batch=30, n_test=30))
        reader = read_cifar10_binary
    else:
        path = tmp_path / "t.zip"
        write_tiny_imagenet_zip(path)
        reader = read_tiny_imagenet
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ArchiveError, match=f"{path.name}: truncated or corrupt {'tar.gz' if kind == 'tar' else 'zip'}"):
        reader(path)


def test_a_wrong_cifar_record_length_is_named(tmp_path: Path):
    arrays = cifar10_arrays(per_batch=4, n_test=4)
    bad = cifar10_record_bytes(*arrays.pop("data_batch_3.bin"))[:-1]  # one byte short
    path = write_cifar10_tar(tmp_path / "c.tar.gz", arrays, extra_members={f"{CIFAR10_TOP}/data_batch_3.bin": bad})
    with pytest.raises(ArchiveError, match=r"data_batch_3.bin: 12291 bytes is not a whole number of 3073-byte"):
        read_cifar10_binary(path)


def test_a_cifar_label_outside_the_class_range_is_named(tmp_path: Path):
    arrays = cifar10_arrays(per_batch=4, n_test=4)
    images, labels = arrays["test_batch.bin"]
    arrays["test_batch.bin"] = (images, np.array([0, 1, 10, 2], np.uint8))
    path = write_cifar10_tar(tmp_path / "c.tar.gz", arrays)
    with pytest.raises(ArchiveError, match="test_batch.bin: record 2 has label 10, outside the class range 0..9"):
        read_cifar10_binary(path)


def test_a_missing_cifar_member_is_named(tmp_path: Path):
    path = write_cifar10_tar(tmp_path / "c.tar.gz", cifar10_arrays(per_batch=2, n_test=2),
                             omit=(f"{CIFAR10_TOP}/test_batch.bin",))
    with pytest.raises(ArchiveError, match=f"no member '{CIFAR10_TOP}/test_batch.bin'"):
        read_cifar10_binary(path)


def test_an_idx_magic_mismatch_is_named(tmp_path: Path):
    written = mnist_arrays(n_train=20, n_test=10)
    write_mnist(tmp_path / "raw", written)
    # type byte 0x0D (float) where MNIST has 0x08 (unsigned byte)
    (tmp_path / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x00")
    with pytest.raises(IDXError, match="t10k-labels-idx1-ubyte.gz: bad IDX magic number 00000d01"):
        prepare(MNIST, tmp_path / "raw", tmp_path / "prepared", val_size=5, split_seed=0, train_limit=None)
    assert not (tmp_path / "prepared").exists()


def test_a_failed_preprocess_keeps_the_earlier_good_output(tmp_path: Path):
    (tmp_path / "raw").mkdir()
    path = write_cifar10_tar(tmp_path / "raw" / "cifar-10-binary.tar.gz", cifar10_arrays(per_batch=6, n_test=6))
    prepare(CIFAR10, tmp_path / "raw", tmp_path / "prepared", val_size=5, split_seed=0, train_limit=None)
    before = {p.name: p.read_bytes() for p in (tmp_path / "prepared").iterdir()}
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError):
        prepare(CIFAR10, tmp_path / "raw", tmp_path / "prepared", val_size=5, split_seed=0, train_limit=None)
    assert {p.name: p.read_bytes() for p in (tmp_path / "prepared").iterdir()} == before


def test_the_reader_never_unpickles(tmp_path: Path, monkeypatch):
    """The binary CIFAR path parses records; a pickle.load anywhere in it would fail this test."""
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used on downloaded data")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    path = write_cifar10_tar(tmp_path / "c.tar.gz", cifar10_arrays(per_batch=2, n_test=2))
    assert len(read_cifar10_binary(path).test.labels) == 2
    assert tarfile.is_tarfile(path)
