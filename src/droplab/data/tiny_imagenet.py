"""Tiny-ImageNet from its official zip: 200 classes of 64x64 JPEGs, decoded on every core.

Layout inside tiny-imagenet-200.zip: wnids.txt names the classes, words.txt their English
names, train/<wnid>/images/*.JPEG hold 500 training images per class, and val/images/*.JPEG
are labelled by val/val_annotations.txt. The official test images carry no labels, so
droplab uses the official val split as its test split.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import zipfile
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from droplab.data.archives import ArchiveError, open_zip, read_zip_member
from droplab.data.arrays import Arrays, RawDataset
from droplab.errors import DroplabError

ROOT = "tiny-imagenet-200/"
SIZE = 64
CHUNK = 200  # images per task: enough to amortise the pipe, few enough that no process idles long at the end

_helper_zip: tuple[Path, zipfile.ZipFile] | None = None


def decode_jpeg(data: bytes, where: str) -> np.ndarray:
    """One JPEG -> (64, 64, 3) uint8; grayscale and CMYK images are converted to RGB."""
    try:
        with Image.open(BytesIO(data)) as image:
            if image.format != "JPEG":
                raise OSError(f"it is {image.format or 'an unknown format'}")
            # convert("RGB") of an RGB image would only copy it: a tenth of the per-image time
            rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ArchiveError(f"{where}: not a decodable JPEG ({exc})") from None
    if rgb.shape != (SIZE, SIZE, 3):
        raise ArchiveError(f"{where}: image is {rgb.shape[1]}x{rgb.shape[0]}, expected {SIZE}x{SIZE}")
    return rgb


def _decode_into(images: np.ndarray, zf: zipfile.ZipFile, archive: Path, names: list[str]) -> None:
    """Decode `names` into `images` (N, 3, 64, 64), transposing each image where it is decoded."""
    for i, name in enumerate(names):
        images[i] = decode_jpeg(zf.read(name), f"{archive}:{name}").transpose(2, 0, 1)


def _open_in_helper(archive: Path) -> None:
    global _helper_zip
    _helper_zip = (archive, zipfile.ZipFile(archive))


def _decode_chunk(names: list[str]) -> np.ndarray:
    assert _helper_zip is not None, "helper started without its archive"
    archive, zf = _helper_zip
    images = np.empty((len(names), 3, SIZE, SIZE), np.uint8)
    _decode_into(images, zf, archive, names)
    return images


def decode_all(zf: zipfile.ZipFile, archive: Path, names: list[str], workers: int) -> np.ndarray:
    """Decode `names` from `zf` on `workers` processes; (N, 3, 64, 64) uint8 in `names` order.

    This process decodes chunks from the end of the list while `workers - 1` helper processes take
    them from the front: it starts at once, so a helper's start-up (a fresh interpreter) delays only
    its own share, and only that share is sent back through a pipe. Not threads: Pillow holds the GIL
    for most of each image, and two threads decoded no faster than one.
    """
    images = np.empty((len(names), 3, SIZE, SIZE), np.uint8)
    if workers == 1:
        _decode_into(images, zf, archive, names)
        return images
    starts = deque(range(0, len(names), CHUNK))
    running: dict[Future[np.ndarray], int] = {}
    # spawn: safe beside threads this process may run (torch, tqdm), and unlike forkserver it never makes
    # this process wait for a helper to start
    try:
        with ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_open_in_helper, initargs=(archive,)) as helpers:
            while starts or running:
                while starts and len(running) < 2 * (workers - 1):  # each helper has its next chunk queued
                    start = starts.popleft()
                    running[helpers.submit(_decode_chunk, names[start:start + CHUNK])] = start
                if starts:
                    start = starts.pop()
                    _decode_into(images[start:start + CHUNK], zf, archive, names[start:start + CHUNK])
                # collect what is ready; once no chunk is left for this process, wait for the helpers
                for future in wait(running, timeout=0 if starts else None, return_when=FIRST_COMPLETED).done:
                    start = running.pop(future)
                    images[start:start + CHUNK] = future.result()
    except BrokenProcessPool:
        raise DroplabError(f"{archive}: a JPEG decoding process died (out of memory?); "
                           "no output was written") from None
    return images


def _lines(zf: zipfile.ZipFile, archive: Path, name: str) -> list[str]:
    return [line.strip() for line in read_zip_member(zf, archive, ROOT + name).decode().splitlines() if line.strip()]


def _class_names(zf: zipfile.ZipFile, archive: Path, wnids: list[str]) -> tuple[str, ...]:
    """The first English name of each wnid from words.txt (the wnid itself where none is given)."""
    words = dict(line.split("\t", 1) for line in _lines(zf, archive, "words.txt") if "\t" in line)
    return tuple(words.get(wnid, wnid).split(",")[0].strip() for wnid in wnids)


def _train_members(names: list[str], archive: Path, index: dict[str, int]) -> tuple[list[str], np.ndarray]:
    members, labels = [], []
    for name in names:
        parts = name[len(ROOT):].split("/")
        if len(parts) == 4 and parts[0] == "train" and parts[2] == "images" and parts[3]:
            if parts[1] not in index:
                raise ArchiveError(f"{archive}:{name}: class folder {parts[1]!r} is not in wnids.txt "
                                   "(label outside the class range)")
            members.append(name)
            labels.append(index[parts[1]])
    return members, np.array(labels, dtype=np.int64)


def _val_members(zf: zipfile.ZipFile, archive: Path, index: dict[str, int],
                 present: set[str]) -> tuple[list[str], np.ndarray]:
    where = f"{archive}:{ROOT}val/val_annotations.txt"
    rows = []
    for number, line in enumerate(_lines(zf, archive, "val/val_annotations.txt"), start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            raise ArchiveError(f"{where}:{number}: expected 'file<TAB>wnid<TAB>box', got {line!r}")
        member, wnid = f"{ROOT}val/images/{fields[0]}", fields[1]
        if wnid not in index:
            raise ArchiveError(f"{where}:{number}: class {wnid!r} is not in wnids.txt (label outside the class range)")
        if member not in present:
            raise ArchiveError(f"{where}:{number}: names {fields[0]!r}, which the archive does not hold")
        rows.append((member, index[wnid]))
    rows.sort()
    return [member for member, _ in rows], np.array([label for _, label in rows], dtype=np.int64)


def read_tiny_imagenet(archive: Path, workers: int | None = None) -> RawDataset:
    workers = workers or len(os.sched_getaffinity(0))
    with open_zip(archive) as zf:
        names = sorted(zf.namelist())
        wnids = _lines(zf, archive, "wnids.txt")
        index = {wnid: label for label, wnid in enumerate(wnids)}
        classes = _class_names(zf, archive, wnids)
        train_names, train_labels = _train_members(names, archive, index)
        val_names, val_labels = _val_members(zf, archive, index, set(names))
        start = time.perf_counter()
        images = decode_all(zf, archive, train_names + val_names, workers)
        seconds = time.perf_counter() - start
    count = len(images)
    train_images, test_images = images[:len(train_names)], images[len(train_names):]
    note = (f"decoded {count} JPEGs in {seconds:.1f} s: {count / seconds:.0f} images/s "
            f"on {workers} process{'es' if workers > 1 else ''}")
    return RawDataset(Arrays(train_images, train_labels), Arrays(test_images, val_labels), classes, (note,))
