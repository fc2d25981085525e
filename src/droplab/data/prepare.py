"""Raw files -> one compact uint8 array per split, labels, and normalization statistics.

Every dataset ends in the same layout (N, C, H, W) uint8 plus int64 labels, so the stages
after this one never need to know which dataset they are training on.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from droplab.atomic import atomic_path, regular_file, write_text
from droplab.data.arrays import Arrays, RawDataset
from droplab.data.cifar import read_cifar10_binary
from droplab.data.datasets import DatasetSpec
from droplab.data.idx import read_idx_dataset
from droplab.data.tiny_imagenet import read_tiny_imagenet
from droplab.errors import DroplabError
from droplab.metric_table import SPLITS
from droplab.records import RERUN_PREPROCESS as RERUN
from droplab.records import Meta, dump


def _key(split: str, kind: str) -> str:
    """The name of a split's images or labels inside arrays.npz."""
    return f"{split}_{kind}"


def split_train_val(full: Arrays, val_size: int, seed: int) -> tuple[Arrays, Arrays]:
    """A seeded random split of the official training set."""
    if val_size >= len(full.labels):
        raise DroplabError(f"data.val_size {val_size} must be smaller than the {len(full.labels)} training images")
    order = np.random.default_rng(seed).permutation(len(full.labels))
    val_idx, train_idx = np.sort(order[:val_size]), np.sort(order[val_size:])
    return subset(full, train_idx), subset(full, val_idx)


def subset(arrays: Arrays, index: np.ndarray) -> Arrays:
    return Arrays(arrays.images[index], arrays.labels[index])


def sample_index(length: int, count: int | None, seed: int | list[int]) -> np.ndarray | None:
    """The sorted indices of a seeded draw of `count` of `length` items, None when `count` is None
    or covers them all: the one way droplab draws a subset, here (data.train_limit and
    data.test_limit) and per run (device_data.subsets), each with its own seed."""
    if count is None or count >= length:
        return None
    return np.sort(np.random.default_rng(seed).permutation(length)[:count])


def limit(arrays: Arrays, count: int | None, seed: int) -> Arrays:
    """A seeded subset of `count` images, for CPU-scale runs; None keeps everything."""
    index = sample_index(len(arrays.labels), count, seed)
    return arrays if index is None else subset(arrays, index)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of images scaled to [0, 1], in float64 for exactness."""
    scaled = images.astype(np.float64) / 255.0
    axes = (0, 2, 3)
    return scaled.mean(axis=axes).tolist(), scaled.std(axis=axes).tolist()


def read_raw(spec: DatasetSpec, raw_dir: Path) -> RawDataset:
    """The official train and test splits of any supported format, in the common layout."""
    files = {role: raw_dir / raw.name for role, raw in spec.files.items()}
    if spec.format == "cifar10_binary":
        return read_cifar10_binary(files["archive"])
    if spec.format == "tiny_imagenet":
        return read_tiny_imagenet(files["archive"])
    return read_idx_dataset(files, spec.classes)


def prepare(spec: DatasetSpec, raw_dir: Path, out_dir: Path, val_size: int, split_seed: int,
            train_limit: int | None, test_limit: int | None = None) -> tuple[Meta, tuple[str, ...]]:
    """Write out_dir/arrays.npz and out_dir/meta.json; return the meta and the reader's notes."""
    raw = read_raw(spec, raw_dir)
    train, val = split_train_val(raw.train, val_size, split_seed)
    test = raw.test
    train = limit(train, train_limit, split_seed + 1)
    test = limit(test, test_limit, split_seed + 2)
    mean, std = channel_stats(train.images)
    splits = {"train": train, "val": val, "test": test}
    meta = Meta(dataset=spec.name, classes=list(raw.classes), input_shape=list(train.images.shape[1:]), mean=mean,
                std=std, sizes={name: int(len(arrays.labels)) for name, arrays in splits.items()})
    with atomic_path(out_dir / "arrays.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{_key(name, kind): getattr(arrays, kind)
                                for name, arrays in splits.items() for kind in ("images", "labels")})
    write_text(out_dir / "meta.json", dump(meta))
    return meta, raw.notes


def read_arrays(path: str | Path, meta: Meta) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """arrays.npz as `prepare` wrote it: split -> (images, labels), checked against meta.json;
    never unpickled (an object array is refused)."""
    try:
        with open(regular_file(path), "rb") as handle:
            if handle.read(4) != b"PK\x03\x04":  # numpy would read anything else as a pickle, and refuse it as one
                raise DroplabError(f"{path}: unreadable (not a zip archive, which an .npz is); {RERUN}")
        _check_sizes(Path(path))
        with np.load(path, allow_pickle=False) as arrays:
            loaded = {name: (arrays[_key(name, "images")], arrays[_key(name, "labels")]) for name in SPLITS}
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy's answer to an object (pickled) array under allow_pickle=False
            raise DroplabError(f"{path}: holds pickled objects, which droplab never loads; {RERUN}") from None
        raise DroplabError(f"{path}: a corrupt array inside ({exc}); {RERUN}") from None
    except KeyError as exc:
        raise DroplabError(f"{path}: not the preprocess stage's arrays (no {exc}); {RERUN}") from None
    except (OSError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as exc:  # truncated, bit-flipped, not a zip
        raise DroplabError(f"{path}: unreadable ({type(exc).__name__}: {exc}); {RERUN}") from None
    shape, classes = meta.input_shape, len(meta.classes)
    for name, (images, labels) in loaded.items():
        if labels.dtype.kind not in "iu":  # class indices: a float, string or bool label is no class
            raise DroplabError(f"{path}: {name} labels are {labels.dtype}, not integer class indices; {RERUN}")
        if images.dtype != np.uint8 or list(images.shape[1:]) != shape or labels.shape != images.shape[:1]:
            expected = ", ".join(map(str, shape))
            raise DroplabError(f"{path}: {name} images are {images.dtype} {list(images.shape)} with "
                               f"{list(labels.shape)} labels, but meta.json says uint8 [N, {expected}]; {RERUN}")
        if len(labels) and (labels.min() < 0 or labels.max() >= classes):
            raise DroplabError(f"{path}: {name} labels run from {labels.min()} to {labels.max()}, but meta.json "
                               f"names {classes} classes; {RERUN}")
    return loaded


def _check_sizes(path: Path) -> None:
    """Each array's header against the bytes stored after it, before numpy allocates what a header
    declares (a header claiming 10**14 labels asks for 728 TiB); an oversized header is named as
    such, not as the pickle numpy's advice suggests."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                try:
                    version = np.lib.format.read_magic(member)
                    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read_header is None:
                        raise ValueError(f".npy format version {version}, not 1.0 or 2.0")
                    shape, _, dtype = read_header(member)
                except ValueError as exc:
                    raise DroplabError(f"{path}: a corrupt array inside ({info.filename}: unreadable header: "
                                       f"{str(exc).split('. ')[0]}); {RERUN}") from None
                stored = info.file_size - member.tell()
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if not dtype.hasobject and declared != stored:  # an object array is refused as pickled
                raise DroplabError(f"{path}: a corrupt array inside ({info.filename} declares {dtype} "
                                   f"{list(shape)}, {declared} bytes, but holds {stored}); {RERUN}")
