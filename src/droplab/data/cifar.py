"""CIFAR-10, binary version: fixed-length records read with numpy, never unpickled.

The python version of CIFAR-10 is a set of pickles, and unpickling a download runs whatever
code it carries. The binary version holds the same images as 3073-byte records:
one label byte, then 1024 red, 1024 green and 1024 blue bytes of a 32x32 image, row-major.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from droplab.data.archives import ArchiveError, read_tar_members
from droplab.data.arrays import Arrays, RawDataset

FOLDER = "cifar-10-batches-bin/"
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
CLASS_FILE = "batches.meta.txt"
SHAPE = (3, 32, 32)
RECORD = 1 + int(np.prod(SHAPE))


def parse_records(data: bytes, where: str, num_classes: int) -> Arrays:
    """Records -> (N, 3, 32, 32) uint8 images and int64 labels, every label checked."""
    if len(data) % RECORD:
        raise ArchiveError(f"{where}: {len(data)} bytes is not a whole number of {RECORD}-byte records "
                           f"(1 label byte + 3072 pixel bytes); the file is truncated or not CIFAR-10 binary")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise ArchiveError(f"{where}: record {bad[0]} has label {labels[bad[0]]}, "
                           f"outside the class range 0..{num_classes - 1}")
    return Arrays(records[:, 1:].reshape(-1, *SHAPE).copy(), labels)


def read_cifar10_binary(archive: Path) -> RawDataset:
    members = read_tar_members(archive, {FOLDER + name for name in (*TRAIN_BATCHES, TEST_BATCH, CLASS_FILE)})
    classes = [line.strip() for line in members[FOLDER + CLASS_FILE].decode().splitlines() if line.strip()]
    if len(classes) != 10:
        raise ArchiveError(f"{archive}:{FOLDER}{CLASS_FILE}: expected 10 class names, found {len(classes)}")
    batches = [parse_records(members[FOLDER + name], f"{archive}:{FOLDER}{name}", len(classes))
               for name in TRAIN_BATCHES]
    train = Arrays(np.concatenate([b.images for b in batches]), np.concatenate([b.labels for b in batches]))
    test = parse_records(members[FOLDER + TEST_BATCH], f"{archive}:{FOLDER}{TEST_BATCH}", len(classes))
    return RawDataset(train, test, tuple(classes))
