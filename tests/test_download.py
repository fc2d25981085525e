import gzip
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from http_server import serve_directory

from droplab.datasets import FASHION_MNIST, DatasetSpec, RawFile
from droplab.download import DATA_DIR_ENV, DownloadError, content_sha256, fetch_dataset


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
            fetch_dataset(spec, tmp_path / "dest")
    message = str(info.value)
    assert f"no source could supply {name}" in message
    assert "system copy" in message and "expected " + "0" * 64 in message
    assert "HTTP 404" in message
    assert message.count("SHA-256 of content is") == 2  # system copy and the second URL
    assert list((tmp_path / "dest").iterdir()) == []


def test_unreachable_network_is_reported(tmp_path: Path):
    spec = replace(FASHION_MNIST, system_dir=str(tmp_path / "none"), urls=("http://127.0.0.1:9/",))
    with pytest.raises(DownloadError, match=r"unreachable \("):
        fetch_dataset(spec, tmp_path / "dest")
