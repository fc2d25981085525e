"""A reader for the IDX format of (Fashion-)MNIST, gzip-compressed or not.

Our own reader, not torchvision's dataset class, so that every malformed file gets an error
that names it instead of a reshape failure deep inside numpy.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from droplab.atomic import regular_file
from droplab.data.arrays import Arrays, RawDataset
from droplab.errors import DroplabError

# The third byte of the magic number names the element type; only unsigned bytes are
# used by the datasets droplab reads.
UBYTE = 0x08


class IDXError(DroplabError):
    pass


GZIP_MAGIC = b"\x1f\x8b"


def open_decompressed(path: str | Path) -> BinaryIO:
    """Open `path` for reading its content, gunzipping it if it is gzip (told by its magic bytes)."""
    with open(regular_file(path), "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # type: ignore[return-value]


def read_bytes(path: str | Path) -> bytes:
    """The decompressed bytes of `path` (.gz or plain)."""
    try:
        with open_decompressed(path) as handle:
            return handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise IDXError(f"{path}: cannot read: {exc}") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an unsigned-byte IDX file into an array of the shape its header declares."""
    data = read_bytes(path)
    if len(data) < 4:
        raise IDXError(f"{path}: {len(data)} bytes is too short for an IDX header")
    zero1, zero2, dtype, ndim = data[0], data[1], data[2], data[3]
    if zero1 or zero2 or dtype != UBYTE or ndim == 0:
        raise IDXError(
            f"{path}: bad IDX magic number {data[:4].hex()}; expected 0000 08 0N "
            "(unsigned bytes, N dimensions)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, file has {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise IDXError(
            f"{path}: header declares shape {shape} ({expected} bytes) but the file holds {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


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


def read_idx_dataset(files: dict[str, Path], classes: tuple[str, ...]) -> RawDataset:
    """(Fashion-)MNIST: four IDX files, images (N, 28, 28) with one label byte each."""
    train = load_idx_pair(files["train_images"], files["train_labels"], len(classes))
    test = load_idx_pair(files["test_images"], files["test_labels"], len(classes))
    return RawDataset(train, test, classes)
