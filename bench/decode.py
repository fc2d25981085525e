"""Preprocessing throughput: droplab's parallel Tiny-ImageNet reader against a one-process PIL loop.

The archive is synthetic (tests/synthetic.py writes the real zip layout) and cached under
bench/.cache/, because building ten thousand JPEGs takes longer than decoding them.
Every timed run is a fresh interpreter (`python -m bench.decode SIDE ARCHIVE`), timed there after
its imports: a real run reads the archive once, in a fresh process, so it pays for every process it
starts, some of which (multiprocessing's resource tracker) a warm benchmark process would reuse.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from droplab.data.tiny_imagenet import read_tiny_imagenet

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
CLASSES = 10
WORKERS = os.cpu_count() or 1


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
    """The usual loop: every JPEG member in name order (train, then val: droplab's order), in this process."""
    with zipfile.ZipFile(path) as zf:
        members = sorted(name for name in zf.namelist() if name.endswith(".JPEG"))
        return np.stack([np.asarray(Image.open(BytesIO(zf.read(name))).convert("RGB")) for name in members])


SIDES: dict[str, Callable[[Path], object]] = {
    "parallel": lambda path: read_tiny_imagenet(path, workers=WORKERS),
    "single": single_process,
}


def cold_seconds(side: str, path: Path) -> float:
    """One run of `side` in a fresh interpreter (see the module docstring)."""
    done = subprocess.run([sys.executable, "-m", "bench.decode", side, str(path)], cwd=ROOT, check=True,
                          capture_output=True, text=True)
    return float(done.stdout)


def run(quick: bool) -> list[dict[str, str]]:
    path = archive(per_class=100 if quick else 1000, n_val=100 if quick else 1000)
    dataset, images = read_tiny_imagenet(path, workers=WORKERS), single_process(path)  # warms the page cache too
    decoded = np.concatenate([dataset.train.images, dataset.test.images])  # the same work, pixel for pixel
    if not np.array_equal(decoded, images.transpose(0, 3, 1, 2)):
        raise RuntimeError(f"droplab decoded {len(decoded)} images, the PIL loop {len(images)}, or their pixels differ")
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    for _ in range(1 if quick else 5):  # interleaved, so a slow spell of a noisy machine hits both sides alike
        for side in SIDES:
            seconds[side].append(cold_seconds(side, path))
    speed = {side: len(images) / statistics.median(times) for side, times in seconds.items()}
    return [{"benchmark": "decode", "case": f"Tiny-ImageNet zip, {len(images):,} 64x64 JPEGs",
             "measured": f"{speed['parallel']:,.0f} img/s (read_tiny_imagenet, {WORKERS} processes)",
             "baseline": f"{speed['single']:,.0f} img/s (one-process PIL loop)",
             "ratio": f"{speed['parallel'] / speed['single']:.2f}x",
             "note": "medians of fresh-interpreter runs, timed after imports: process start-up counts"}]


if __name__ == "__main__":  # one timed run for cold_seconds: python -m bench.decode SIDE ARCHIVE
    start = time.perf_counter()
    SIDES[sys.argv[1]](Path(sys.argv[2]))
    print(time.perf_counter() - start)
