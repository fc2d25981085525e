"""Arrangements for the catalogue's cases of files, transfers and signals (tests/test_bad_inputs.py):
a server that never stops sending, /dev/zero and FIFOs where files belong, SIGTERM mid-training,
arrays.npz with labels or headers no preprocess stage writes, and settings the machine cannot run."""

from __future__ import annotations

import io
import os
import shutil
import signal
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from droplab.training import train

from synthetic import mnist_arrays, write_mnist

if TYPE_CHECKING:
    from test_bad_inputs import Project

FIFO_DEADLINE = 60.0  # seconds: then a watchdog opens each FIFO for writing, so a reader stuck on it sees EOF


def _declare_pinned_file(project: Project, url: str) -> tuple[Path, str]:
    """`lab`, the four IDX files served at `url`, pinned by digest and the training images also by size."""
    from test_bad_inputs import IDX_ROLES, _served_idx

    served = _served_idx(project, url)
    name = IDX_ROLES["train_images"]
    project.raw["extra_datasets"]["lab"]["files"]["train_images"]["size"] = (served / name).stat().st_size
    return served, name


def unbounded_stream(project: Project) -> None:
    """The server streams the pinned training images without Content-Length, over and over (`endless`)."""
    _declare_pinned_file(project, project.server_url)


def nothing_kept_to_resume(root: Path) -> None:
    """Bytes beyond the pinned size are no prefix of the file: no .part is kept to resume from."""
    assert not list(root.glob("data/raw/.downloads/**/*.part"))


def source_dir_dev_zero(project: Project) -> None:
    """data.source_dir holds the four files, but the training images are a symlink to /dev/zero; no URL answers."""
    source = project.root.parent / "source"
    served, name = _declare_pinned_file(project, "http://127.0.0.1:9/")
    shutil.copytree(served, source)
    (source / name).unlink()
    (source / name).symlink_to("/dev/zero")
    project.raw["data"]["source_dir"] = str(source)


def fifo(path: Path) -> None:
    """A FIFO at `path`, with a watchdog: should a reader open it anyway, it gets EOF after
    FIFO_DEADLINE instead of hanging the test run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    os.mkfifo(path)

    def unblock() -> None:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # nobody is reading: nothing hangs

    watchdog = threading.Timer(FIFO_DEADLINE, unblock)
    watchdog.daemon = True
    watchdog.start()


def fifo_at(relative: str, before: Callable[[Project], object] = lambda project: None) -> Callable[[Project], None]:
    def arrange(project: Project) -> None:
        before(project)
        fifo(project.root / relative)

    return arrange


def raw_idx_files(project: Project) -> None:
    from test_bad_inputs import IDX_ROLES

    write_mnist(project.lab_dataset("idx", IDX_ROLES), mnist_arrays())


def sigterm_in_second_epoch(project: Project) -> None:
    """Two epochs, a checkpoint after each; SIGTERM arrives (really, to this process) in the second."""
    project.raw["studies"]["s2_mlp"]["cpu"]["train"]["epochs"] = 2
    project.monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)
    real = train.train_one_epoch
    calls = []

    def epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    project.monkeypatch.setattr(train, "train_one_epoch", epoch)


def first_epoch_checkpoint_kept(root: Path) -> None:
    state = torch.load(root / "checkpoints/s2_mlp/seed0.pt", weights_only=True)
    assert state["epoch"] == 1, state["epoch"]
    assert not [path for path in root.rglob("*") if path.name.endswith(".tmp")]


def npz_member(name: str, change: Callable[[bytes], bytes]) -> Callable[[Project], None]:
    """arrays.npz with the bytes of member `name` changed, every other member as it was."""
    def arrange(project: Project) -> None:
        path = project.root / "data/prepared/arrays.npz"
        out = io.BytesIO()
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
            for info in source.infolist():
                data = source.read(info)
                target.writestr(info.filename, change(data) if info.filename == name else data)
        path.write_bytes(out.getvalue())

    return arrange


def _npy(header: bytes, version: int, body: bytes) -> bytes:
    length = len(header).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + length + header + body


def _body(data: bytes) -> bytes:
    """The array bytes of a version 1.0 .npy (after its magic, length and header)."""
    return data[10 + int.from_bytes(data[8:10], "little"):]


def huge_shape(data: bytes) -> bytes:
    """train_labels.npy declaring 10**14 labels, with the 120 it holds."""
    header = b"{'descr': '<i8', 'fortran_order': False, 'shape': (100000000000000,), }"
    return _npy(header.ljust(117) + b"\n", 1, _body(data))


def huge_header(data: bytes) -> bytes:
    """train_labels.npy with a 60 kB header, more than numpy parses without trusting the file."""
    header = b"{'descr': '<i8', 'fortran_order': False, 'shape': (120,), }"
    return _npy(header.ljust(60_000 - 1) + b"\n", 2, _body(data))


def string_labels(project: Project) -> None:
    path = project.root / "data/prepared/arrays.npz"
    with np.load(path) as arrays:
        content = dict(arrays)
    content["train_labels"] = content["train_labels"].astype(str)  # '0'..'9': no pickle, and no class index
    np.savez(path, **content)
