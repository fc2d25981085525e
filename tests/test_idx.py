import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from droplab.data.idx import IDXError, load_idx_pair, read_idx

from synthetic import idx_bytes, write_idx_gz


def test_reads_gzip_and_plain_idx(tmp_path: Path):
    images = np.random.default_rng(1).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    plain = tmp_path / "images-idx3-ubyte"
    plain.write_bytes(idx_bytes(images))
    np.testing.assert_array_equal(read_idx(plain), images)
    np.testing.assert_array_equal(read_idx(write_idx_gz(tmp_path / "images.gz", images)), images)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, "bad IDX magic number"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "header declares shape (5,)"),
        (b"\x00\x00", "too short"),
    ],
)
def test_malformed_files_are_named(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "broken-idx.gz"
    path.write_bytes(gzip.compress(content))
    with pytest.raises(IDXError, match=re.escape(message)) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_is_named(tmp_path: Path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 4, 4), np.uint8)))[:-20])
    with pytest.raises(IDXError, match="cut.gz"):
        read_idx(path)


def test_image_and_label_counts_must_agree(tmp_path: Path):
    images = write_idx_gz(tmp_path / "images.gz", np.zeros((6, 4, 4), np.uint8))
    labels = write_idx_gz(tmp_path / "labels.gz", np.zeros(5, np.uint8))
    with pytest.raises(IDXError, match=r"labels.gz: 5 labels but images.gz holds 6 images"):
        load_idx_pair(images, labels, num_classes=10)


def test_labels_outside_class_range_are_refused(tmp_path: Path):
    images = write_idx_gz(tmp_path / "images.gz", np.zeros((3, 4, 4), np.uint8))
    labels = write_idx_gz(tmp_path / "labels.gz", np.array([0, 10, 2], np.uint8))
    with pytest.raises(IDXError, match="label 10 outside the class range 0..9"):
        load_idx_pair(images, labels, num_classes=10)
