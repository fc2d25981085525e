"""Preprocessing throughput: droplab's parallel Tiny-ImageNet reader against a one-process PIL loop.

The archive is synthetic (tests/synthetic.py writes the real zip layout) and cached under
bench/.cache/, because building ten thousand JPEGs takes longer than decoding them.
"""

from __future__ import annotations

import os
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from bench.timing import median_seconds
from droplab.tiny_imagenet import read_tiny_imagenet

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
CLASSES = 10


def archive(per_class: int, n_val: int) -> Path:
    """The cached synthetic zip, written to a temporary name first so an interrupted build is not reused."""
    path = CACHE / f"tiny-imagenet-{CLASSES}x{per_class}-val{n_val}.zip"
    if not path.exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from synthetic import write_tiny_imagenet_zip

        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        write_tiny_imagenet_zip(partial, n_classes=CLASSES, per_class=per_class, n_val=n_val, n_test=0)
        partial.replace(path)
    return path


def single_process(path: Path) -> np.ndarray:
    """The usual loop: every JPEG member, one after another, in this process."""
    with zipfile.ZipFile(path) as zf:
        members = [name for name in zf.namelist() if name.endswith(".JPEG")]
        return np.stack([np.asarray(Image.open(BytesIO(zf.read(name))).convert("RGB")) for name in members])


def run(quick: bool) -> list[dict[str, str]]:
    path = archive(per_class=100 if quick else 1000, n_val=100 if quick else 1000)
    workers = os.cpu_count() or 1
    sides = {"parallel": lambda: read_tiny_imagenet(path, workers=workers), "single": lambda: single_process(path)}
    dataset, images = (run() for run in sides.values())  # warm-up (page cache, forkserver), and the same-work check
    count = len(dataset.train.labels) + len(dataset.test.labels)
    pixel_sum = int(dataset.train.images.sum(dtype=np.int64) + dataset.test.images.sum(dtype=np.int64))
    if (count, pixel_sum) != (len(images), int(images.sum(dtype=np.int64))):
        raise RuntimeError(f"droplab decoded {count} images, the PIL loop {len(images)}, or their pixels differ")
    speed = {name: count / s for name, s in median_seconds(sides, 1 if quick else 3).items()}
    return [{"benchmark": "decode", "case": f"Tiny-ImageNet zip, {count:,} 64x64 JPEGs",
             "measured": f"{speed['parallel']:,.0f} img/s (read_tiny_imagenet, {workers} workers)",
             "baseline": f"{speed['single']:,.0f} img/s (one-process PIL loop)",
             "ratio": f"{speed['parallel'] / speed['single']:.2f}x", "note": ""}]
