"""Case 11 of issue 26: a FIFO or device where droplab expects a file is refused by its metadata,
before it is opened (opening a FIFO for reading waits for a writer forever)."""

import os
from pathlib import Path

import pytest

from bad_files_and_signals import fifo
from droplab import torch_files
from droplab.atomic import regular_file
from droplab.data.idx import read_idx
from droplab.data.prepare import read_arrays
from droplab.errors import DroplabError
from droplab.records import load_meta
from droplab.training import checkpoint

from synthetic import write_prepared


def test_a_regular_file_passes_and_its_size_can_be_bounded(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    assert regular_file(path) == path
    assert regular_file(path, 5) == path
    with pytest.raises(DroplabError, match="f: 5 bytes, more than the 4 expected; refused unread"):
        regular_file(path, 4)
    with pytest.raises(FileNotFoundError):
        regular_file(tmp_path / "absent")


@pytest.mark.parametrize(("make", "kind"), [
    (fifo, "a FIFO \\(named pipe\\)"),
    (lambda path: path.symlink_to("/dev/zero"), "a character device"),
    (lambda path: path.mkdir(), "a directory")])
def test_anything_else_is_refused_by_every_reader(tmp_path: Path, make, kind: str):
    write_prepared(tmp_path / "prepared")
    meta = load_meta(tmp_path / "prepared")
    path = tmp_path / "thing"
    make(path)
    readers = [regular_file, read_idx, lambda p: torch_files.load(p, "cpu", "model file", ""),
               lambda p: checkpoint.load(p, {}), lambda p: read_arrays(p, meta)]
    for read in readers:
        with pytest.raises(DroplabError, match=f"thing: {kind} where a file is expected"):
            read(path)
    os.replace(tmp_path / "prepared" / "arrays.npz", tmp_path / "arrays.npz")
    make(tmp_path / "prepared" / "arrays.npz")
    with pytest.raises(DroplabError, match=f"arrays.npz: {kind} where"):
        checkpoint.data_version(tmp_path / "prepared")
