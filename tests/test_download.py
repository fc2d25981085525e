import gzip
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from droplab.datasets import FASHION_MNIST, DatasetSpec, RawFile
from droplab.download import DATA_DIR_ENV, DownloadError, content_sha256, fetch_dataset

from http_server import serve_directory


def _spec_for(directory: Path, urls: tuple[str, ...] = (), system_dir: str | None = None) -> DatasetSpec:
    """A dataset spec pinned to the content of the files in `directory`, hashed independently."""
    files = {}
    for path in sorted(directory.iterdir()):
        content = gzip.decompress(path.read_bytes())
        files[path.name] = RawFile(path.name, hashlib.sha256(content).hexdigest(), len(content))
    return replace(FASHION_MNIST, name="fake", files=files, urls=urls, system_dir=system_dir)


def test_content_hash_ignores_gzip_recompression(tmp_path: Path):
    payload = b"\x00\x00\x08\x01\x00\x00\x00\x03abc"
    a, b = tmp_path / "a.gz", tmp_path / "b.gz"
    a.write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))
    b.write_bytes(gzip.compress(payload, compresslevel=9, mtime=12345))
    assert a.read_bytes() != b.read_bytes()
    assert content_sha256(a) == content_sha256(b) == hashlib.sha256(payload).hexdigest()


def test_system_copy_is_used_before_the_network(fake_mnist, tmp_path: Path):
    spec = _spec_for(fake_mnist["dir"], urls=("http://127.0.0.1:9/",), system_dir=str(fake_mnist["dir"]))
    used = fetch_dataset(spec, tmp_path / "dest")
    assert set(used.values()) == {"system copy"}
    for name in spec.files:
        assert (tmp_path / "dest" / name).read_bytes() == (fake_mnist["dir"] / name).read_bytes()


def test_user_directory_comes_first(fake_mnist, tmp_path: Path, monkeypatch):
    spec = _spec_for(fake_mnist["dir"], system_dir="/nonexistent")
    monkeypatch.setenv(DATA_DIR_ENV, str(fake_mnist["dir"]))
    assert set(fetch_dataset(spec, tmp_path / "a").values()) == {f"${DATA_DIR_ENV}"}
    assert set(fetch_dataset(spec, tmp_path / "b", source_dir=str(fake_mnist["dir"])).values()) == {
        "params data.source_dir"
    }


def test_downloads_over_http_and_verifies(fake_mnist, tmp_path: Path):
    with serve_directory(fake_mnist["dir"]) as url:
        spec = _spec_for(fake_mnist["dir"], urls=(url,), system_dir=str(tmp_path / "no-such-dir"))
        used = fetch_dataset(spec, tmp_path / "dest")
    assert set(used.values()) == {"official URL"}
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == sorted(spec.files)


def test_every_failed_source_is_listed_and_nothing_is_left_behind(fake_mnist, tmp_path: Path):
    spec = _spec_for(fake_mnist["dir"])
    name = "train-labels-idx1-ubyte.gz"
    spec = replace(spec, files={name: replace(spec.files[name], sha256="0" * 64)})
    with serve_directory(fake_mnist["dir"]) as url:
        spec = replace(spec, urls=(url + "missing/", url), system_dir=str(fake_mnist["dir"]))
        with pytest.raises(DownloadError) as info:
            fetch_dataset(spec, tmp_path / "out" / "dest")
    message = str(info.value)
    assert f"no source could supply {name}" in message
    assert "system copy" in message and "expected " + "0" * 64 in message
    assert "HTTP 404" in message
    assert message.count("SHA-256 of content is") == 2  # system copy and the second URL
    assert list((tmp_path / "out").iterdir()) == []  # no dest, no partial folder


def test_a_failed_refetch_keeps_the_earlier_good_copy(fake_mnist, tmp_path: Path):
    good = _spec_for(fake_mnist["dir"], system_dir=str(fake_mnist["dir"]))
    fetch_dataset(good, tmp_path / "out" / "dest")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out" / "dest").iterdir()}
    # The first files verify, the last does not: nothing of the half-done fetch may show.
    last = sorted(good.files)[-1]
    bad = replace(good, files={**good.files, last: replace(good.files[last], sha256="f" * 64)})
    with pytest.raises(DownloadError, match=last):
        fetch_dataset(bad, tmp_path / "out" / "dest")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "dest").iterdir()} == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["dest"]


def test_corrupt_gzip_in_one_source_falls_back_to_the_next(fake_mnist, tmp_path: Path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for path in fake_mnist["dir"].iterdir():
        data = bytearray(path.read_bytes())
        data[20:40] = b"\xff" * 20  # damage the deflate stream, keep the gzip header
        (corrupt / path.name).write_bytes(bytes(data))
    spec = _spec_for(fake_mnist["dir"], system_dir=str(fake_mnist["dir"]))
    used = fetch_dataset(spec, tmp_path / "out" / "dest", source_dir=str(corrupt))
    assert set(used.values()) == {"system copy"}


def test_unreachable_network_is_reported(tmp_path: Path):
    spec = replace(FASHION_MNIST, system_dir=str(tmp_path / "none"), urls=("http://127.0.0.1:9/",))
    with pytest.raises(DownloadError, match=r"unreachable \("):
        fetch_dataset(spec, tmp_path / "dest")
