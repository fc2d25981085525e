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
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from droplab.archives import ArchiveError, open_zip, read_zip_member
from droplab.arrays import Arrays, RawDataset
from droplab.errors import DroplabError

ROOT = "tiny-imagenet-200/"
SIZE = 64
CHUNK = 500  # images per task: large enough to amortise inter-process transfer

_worker_zip: tuple[Path, zipfile.ZipFile] | None = None


def decode_jpeg(data: bytes, where: str) -> np.ndarray:
    """One JPEG -> (64, 64, 3) uint8; grayscale and CMYK images are converted to RGB."""
    try:
        with Image.open(BytesIO(data)) as image:
            if image.format != "JPEG":
                raise OSError(f"it is {image.format or 'an unknown format'}")
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ArchiveError(f"{where}: not a decodable JPEG ({exc})") from None
    if rgb.shape != (SIZE, SIZE, 3):
        raise ArchiveError(f"{where}: image is {rgb.shape[1]}x{rgb.shape[0]}, expected {SIZE}x{SIZE}")
    return rgb


def _open_in_worker(archive: Path) -> None:
    global _worker_zip
    _worker_zip = (archive, zipfile.ZipFile(archive))


def _decode_chunk(names: list[str]) -> np.ndarray:
    assert _worker_zip is not None, "worker started without its archive"
    archive, zf = _worker_zip
    return np.stack([decode_jpeg(zf.read(name), f"{archive}:{name}") for name in names])


def decode_all(archive: Path, names: list[str], workers: int) -> np.ndarray:
    """Decode `names` from the zip in parallel processes; (N, 3, 64, 64) uint8 in `names` order."""
    if not names:
        return np.zeros((0, 3, SIZE, SIZE), np.uint8)
    chunks = [names[i:i + CHUNK] for i in range(0, len(names), CHUNK)]
    if workers == 1:
        _open_in_worker(archive)
        decoded = [_decode_chunk(chunk) for chunk in chunks]
    else:
        # forkserver: safe beside threads the parent may run (torch, tqdm), cheap after the first fork
        context = multiprocessing.get_context("forkserver")
        try:
            with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context, initializer=_open_in_worker,
                                     initargs=(archive,)) as pool:
                decoded = list(pool.map(_decode_chunk, chunks))
        except BrokenProcessPool:
            raise DroplabError(f"{archive}: a JPEG decoding process died (out of memory?); "
                               "no output was written") from None
    return np.concatenate(decoded).transpose(0, 3, 1, 2).copy()


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
    train_images = decode_all(archive, train_names, workers)
    test_images = decode_all(archive, val_names, workers)
    seconds = time.perf_counter() - start
    count = len(train_names) + len(val_names)
    note = (f"decoded {count} JPEGs in {seconds:.1f} s: {count / seconds:.0f} images/s "
            f"on {workers} process{'es' if workers > 1 else ''}")
    return RawDataset(Arrays(train_images, train_labels), Arrays(test_images, val_labels), classes, (note,))
