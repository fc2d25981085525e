"""The synthetic datasets and the HTTP server are themselves checked, by means independent of droplab."""

from __future__ import annotations

import gzip
import http.client
import io
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from http_server import Request, serve, serve_directory
from synthetic import (
    CIFAR10_BATCHES,
    CIFAR10_CLASSES,
    cifar10_arrays,
    mnist_arrays,
    tar_with_symlink,
    write_cifar10_tar,
    write_mnist,
    write_tiny_imagenet_zip,
)


def test_mnist_files_are_gzipped_idx_with_big_endian_dims(tmp_path: Path):
    arrays = mnist_arrays(n_train=30, n_test=12, seed=3)
    write_mnist(tmp_path, arrays)
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3)] == [30, 28, 28]
    np.testing.assert_array_equal(np.frombuffer(raw[16:], np.uint8).reshape(30, 28, 28), arrays[next(iter(arrays))])
    labels = gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert labels[:8] == b"\x00\x00\x08\x01" + (12).to_bytes(4, "big")
    assert sorted(set(labels[8:])) == list(range(10))


def test_cifar_tar_layout_and_records_decode_by_hand(tmp_path: Path):
    arrays = cifar10_arrays(per_batch=12, n_test=10, seed=1)
    path = write_cifar10_tar(tmp_path / "cifar-10-binary.tar.gz", arrays)
    with tarfile.open(path) as tar:
        names = tar.getnames()
        files = {member.name: tar.extractfile(member).read() for member in tar.getmembers() if member.isfile()}
    top = "cifar-10-batches-bin"
    assert sorted(names) == sorted(
        [top] + [f"{top}/{name}" for name in (*CIFAR10_BATCHES, "batches.meta.txt", "readme.html")]
    )
    assert files[f"{top}/batches.meta.txt"].decode().splitlines() == [*CIFAR10_CLASSES, "", ""]
    for name in CIFAR10_BATCHES:
        images, labels = arrays[name]
        data = files[f"{top}/{name}"]
        assert len(data) % 3073 == 0 and len(data) // 3073 == len(labels)
        assert sorted(set(labels)) == list(range(10))
        record = np.frombuffer(data, np.uint8).reshape(-1, 3073)[7]
        assert record[0] == labels[7]
        for channel in range(3):
            np.testing.assert_array_equal(
                record[1 + 1024 * channel : 1025 + 1024 * channel].reshape(32, 32), images[7, channel]
            )
    assert (
        path.read_bytes() == write_cifar10_tar(tmp_path / "again.tar.gz", cifar10_arrays(12, 10, seed=1)).read_bytes()
    )


def test_cifar_tar_keeps_hostile_names_verbatim_and_omits(tmp_path: Path):
    path = write_cifar10_tar(
        tmp_path / "c.tar.gz",
        cifar10_arrays(per_batch=10, n_test=10),
        extra_members={"../evil.txt": b"x", "/abs.txt": b"y"},
        omit=("cifar-10-batches-bin/test_batch.bin",),
    )
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert "../evil.txt" in names and "/abs.txt" in names
    assert "cifar-10-batches-bin/test_batch.bin" not in names and "cifar-10-batches-bin/data_batch_5.bin" in names
    with pytest.raises(ValueError, match="unknown"):
        write_cifar10_tar(tmp_path / "d.tar.gz", cifar10_arrays(), omit=("test_batch.bin",))
    with tarfile.open(tar_with_symlink(tmp_path / "l.tar.gz", "cifar-10-batches-bin/x", "/etc/passwd")) as tar:
        (link,) = tar.getmembers()
    assert link.issym() and link.name == "cifar-10-batches-bin/x" and link.linkname == "/etc/passwd"


def test_tiny_imagenet_zip_has_the_real_layout(tmp_path: Path):
    path = tmp_path / "tiny-imagenet-200.zip"
    desc = write_tiny_imagenet_zip(path, n_classes=3, per_class=2, n_val=4, n_test=2, seed=5)
    top = "tiny-imagenet-200/"
    wnids = desc["wnids"]
    expected = {top + name for name in ("", "wnids.txt", "words.txt", "train/", "val/", "val/images/", "test/")}
    expected |= {f"{top}test/images/", f"{top}val/val_annotations.txt"}
    expected |= {f"{top}val/images/val_{i}.JPEG" for i in range(4)} | {
        f"{top}test/images/test_{i}.JPEG" for i in range(2)
    }
    for wnid in wnids:
        expected |= {f"{top}train/{wnid}/", f"{top}train/{wnid}/images/", f"{top}train/{wnid}/{wnid}_boxes.txt"}
        expected |= {f"{top}train/{wnid}/images/{wnid}_{i}.JPEG" for i in range(2)}
    with zipfile.ZipFile(path) as archive:
        assert set(archive.namelist()) == expected
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist() if not info.is_dir())
        text = {
            name: archive.read(top + name).decode() for name in ("wnids.txt", "words.txt", "val/val_annotations.txt")
        }
        boxes = archive.read(f"{top}train/{wnids[0]}/{wnids[0]}_boxes.txt").decode()
        decoded = {name: np.asarray(Image.open(io.BytesIO(archive.read(name)))) for name in desc["images"]}
    assert text["wnids.txt"].split() == wnids and wnids != sorted(wnids)
    words = dict(line.split("\t") for line in text["words.txt"].splitlines())
    assert set(wnids) < set(words) and words["n01443537"] == "goldfish, Carassius auratus"
    assert [line.split("\t")[0] for line in boxes.splitlines()] == [f"{wnids[0]}_{i}.JPEG" for i in range(2)]
    annotations = [line.split("\t") for line in text["val/val_annotations.txt"].splitlines()]
    assert {f"{top}val/images/{row[0]}": row[1] for row in annotations} == desc["val"]
    assert all(len(row) == 6 for row in annotations) and set(desc["val"].values()) == set(wnids)
    assert set(desc["train"].values()) == set(wnids) and len(desc["train"]) == 6
    for name, pixels in decoded.items():
        assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
        np.testing.assert_array_equal(pixels, desc["images"][name])


def test_tiny_imagenet_images_are_learnable_by_colour(tmp_path: Path):
    desc = write_tiny_imagenet_zip(tmp_path / "t.zip", n_classes=4, per_class=5, n_val=8)
    means = {
        wnid: np.mean([desc["images"][m].mean((0, 1)) for m, w in desc["train"].items() if w == wnid], axis=0)
        for wnid in desc["wnids"]
    }
    for member, wnid in desc["val"].items():
        colour = desc["images"][member].mean((0, 1))
        assert min(means, key=lambda w: np.linalg.norm(means[w] - colour)) == wnid


def test_tiny_imagenet_grayscale_corrupt_omit_and_raw_names(tmp_path: Path):
    path = tmp_path / "t.zip"
    grey, bad, gone = (f"tiny-imagenet-200/val/images/val_{i}.JPEG" for i in range(3))
    desc = write_tiny_imagenet_zip(
        path,
        grayscale=(grey,),
        corrupt=(bad,),
        omit=(gone, "tiny-imagenet-200/val/val_annotations.txt"),
        extra_members={"../evil.txt": b"x"},
    )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert Image.open(io.BytesIO(archive.read(grey))).mode == "L"
        with pytest.raises(UnidentifiedImageError):
            Image.open(io.BytesIO(archive.read(bad)))
    assert "../evil.txt" in names and gone not in names and "tiny-imagenet-200/val/val_annotations.txt" not in names
    assert bad in names and bad in desc["val"] and bad not in desc["images"] and gone not in desc["val"]
    channels = desc["images"][grey]
    assert (channels[..., 0] == channels[..., 1]).all() and (channels[..., 1] == channels[..., 2]).all()


def _get(url: str, range_: str | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers={"Range": range_} if range_ else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def blob(tmp_path: Path) -> bytes:
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "file.bin").write_bytes(data)
    return data


def test_server_ranges_and_errors(tmp_path: Path, blob: bytes):
    with serve(tmp_path) as server:
        url = server.url + "sub/file.bin"
        status, headers, body = _get(url)
        assert (status, headers["Accept-Ranges"], headers["Content-Length"], body) == (200, "bytes", "5000", blob)
        status, headers, body = _get(url, "bytes=1000-")
        assert (status, headers["Content-Range"], headers["Content-Length"]) == (206, "bytes 1000-4999/5000", "4000")
        assert body == blob[1000:]
        status, headers, body = _get(url, "bytes=10-19")
        assert (status, headers["Content-Range"], body) == (206, "bytes 10-19/5000", blob[10:20])
        assert _get(url, "bytes=4990-9999")[2] == blob[4990:]
        status, headers, _ = _get(url, "bytes=5000-")
        assert (status, headers["Content-Range"]) == (416, "bytes */5000")
        assert _get(server.url + "missing.bin")[0] == 404
        status, headers, body = _get(url, method="HEAD")
        assert (status, headers["Content-Length"], body) == (200, "5000", b"")
    assert server.requests[:3] == [
        Request("GET", "/sub/file.bin", None, 200),
        Request("GET", "/sub/file.bin", "bytes=1000-", 206),
        Request("GET", "/sub/file.bin", "bytes=10-19", 206),
    ]
    assert server.requests[4].status == 416 and server.requests[-1] == Request("HEAD", "/sub/file.bin", None, 200)


def test_server_never_serves_outside_its_root(tmp_path: Path, blob: bytes):
    (tmp_path / "outside.bin").write_bytes(b"secret")
    with serve_directory(tmp_path / "sub") as url:
        assert _get(url + "file.bin")[2] == blob
        assert _get(url + "../outside.bin")[0] == 404
        assert _get(url + "%2E%2E/outside.bin")[0] == 404


def test_server_cuts_the_first_get_once_then_resumes(tmp_path: Path, blob: bytes):
    with serve(tmp_path, cut_after={"sub/file.bin": 1000}) as server:
        url = server.url + "sub/file.bin"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.headers["Content-Length"] == "5000"
            with pytest.raises(http.client.IncompleteRead) as cut:
                response.read()
        assert cut.value.partial == blob[:1000]
        assert _get(url, "bytes=1000-")[2] == blob[1000:]
        assert _get(url)[2] == blob
    assert [(r.range, r.status) for r in server.requests] == [(None, 200), ("bytes=1000-", 206), (None, 200)]


def test_server_without_range_support_and_plain_url(tmp_path: Path, blob: bytes):
    with serve_directory(tmp_path, ranges=False) as url:
        assert isinstance(url, str) and url.endswith("/")
        status, headers, body = _get(url + "sub/file.bin", "bytes=1000-")
    assert (status, body, "Accept-Ranges" in headers, "Content-Range" in headers) == (200, blob, False, False)


GROUPED = '''
import os, pytest
from pathlib import Path

def record(name):
    with open(Path(__file__).parent / "workers.txt", "a") as out:
        out.write(f"{name} {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.xdist_group("clone")
@pytest.mark.parametrize("i", range(4))
def test_grouped(i):
    record("grouped")

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    record("free")
'''


def test_loadgroup_keeps_a_group_on_one_worker(tmp_path: Path):
    """`make test` builds each shared clone once only because pytest-xdist's loadgroup sends a
    group's tests to one worker; on some pytest releases it silently stops doing so."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                           "--dist", "loadgroup"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
    workers: dict[str, set[str]] = {}
    for line in (tmp_path / "workers.txt").read_text().splitlines():
        name, worker = line.split()
        workers.setdefault(name, set()).add(worker)
    assert len(workers["grouped"]) == 1, workers
    assert workers["free"] <= {"gw0", "gw1"}
