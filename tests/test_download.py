"""Sources, verification, and transfers over a real HTTP server on 127.0.0.1."""

import gzip
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from bad_files_and_signals import fifo
from droplab.data.datasets import FASHION_MNIST, DatasetSpec, RawFile
from droplab.data.download import DATA_DIR_ENV, DownloadError, digests, fetch_dataset
from droplab.data.transfer import Retry

from http_server import serve, serve_directory

FAST = Retry(attempts=3, backoff=0.01, timeout=5)


def _spec_for(directory: Path, urls: tuple[str, ...] = (), system_dir: str | None = None) -> DatasetSpec:
    """A dataset spec pinned to the content of the files in `directory`, hashed independently."""
    files = {}
    for path in sorted(directory.iterdir()):
        content = gzip.decompress(path.read_bytes())
        files[path.name] = RawFile(path.name, hashlib.sha256(content).hexdigest(), content_digest=True)
    return replace(FASHION_MNIST, name="fake", files=files, urls=urls, system_dir=system_dir)


def _archive_spec(path: Path, url: str, size: bool = True) -> DatasetSpec:
    """A one-file dataset pinned to the bytes of `path`, served from `url`."""
    data = path.read_bytes()
    raw = RawFile(path.name, hashlib.sha256(data).hexdigest(), len(data) if size else None)
    return DatasetSpec("served", "cifar10_binary", {"archive": raw}, (url,))


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    """3 MB of incompressible bytes: several 1 MiB read chunks, so a cut lands mid-transfer."""
    served = tmp_path / "served"
    served.mkdir()
    path = served / "archive.tar.gz"
    path.write_bytes(hashlib.shake_256(b"droplab").digest(3_000_000))
    return path


def test_content_digest_ignores_gzip_recompression(tmp_path: Path):
    payload = b"\x00\x00\x08\x01\x00\x00\x00\x03abc"
    a, b = tmp_path / "a.gz", tmp_path / "b.gz"
    a.write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))
    b.write_bytes(gzip.compress(payload, compresslevel=9, mtime=12345))
    assert a.read_bytes() != b.read_bytes()
    raw = RawFile("x.gz", "0" * 64, content_digest=True)
    assert digests(a, raw) == digests(b, raw)
    assert digests(a, raw)["sha256"] == hashlib.sha256(payload).hexdigest()
    assert digests(a, raw)["md5"] == hashlib.md5(payload).hexdigest()


def test_system_copy_is_used_before_the_network(fake_mnist, tmp_path: Path):
    spec = _spec_for(fake_mnist["dir"], urls=("http://127.0.0.1:9/",), system_dir=str(fake_mnist["dir"]))
    fetched = fetch_dataset(spec, tmp_path / "dest")
    assert {how.source for how in fetched.values()} == {"system copy"}
    for name in spec.files:
        assert (tmp_path / "dest" / name).read_bytes() == (fake_mnist["dir"] / name).read_bytes()


def test_user_directory_comes_first(fake_mnist, tmp_path: Path, monkeypatch):
    spec = _spec_for(fake_mnist["dir"], system_dir="/nonexistent")
    monkeypatch.setenv(DATA_DIR_ENV, str(fake_mnist["dir"]))
    assert {how.source for how in fetch_dataset(spec, tmp_path / "a").values()} == {f"${DATA_DIR_ENV}"}
    fetched = fetch_dataset(spec, tmp_path / "b", source_dir=str(fake_mnist["dir"]))
    assert {how.source for how in fetched.values()} == {"params data.source_dir"}


def test_downloads_over_http_and_verifies(fake_mnist, tmp_path: Path):
    with serve_directory(fake_mnist["dir"]) as url:
        spec = _spec_for(fake_mnist["dir"], urls=(url,), system_dir=str(tmp_path / "no-such-dir"))
        fetched = fetch_dataset(spec, tmp_path / "data" / "dest", retry=FAST)
    assert {how.source for how in fetched.values()} == {"official URL"}
    assert sorted(p.name for p in (tmp_path / "data" / "dest").iterdir()) == sorted(spec.files)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["dest"]  # no staging or .part left


def test_every_failed_source_is_listed_and_nothing_is_left_behind(fake_mnist, tmp_path: Path):
    spec = _spec_for(fake_mnist["dir"])
    name = "train-labels-idx1-ubyte.gz"
    spec = replace(spec, files={name: replace(spec.files[name], sha256="0" * 64)})
    with serve_directory(fake_mnist["dir"]) as url:
        spec = replace(spec, urls=(url + "missing/", url), system_dir=str(fake_mnist["dir"]))
        with pytest.raises(DownloadError) as info:
            fetch_dataset(spec, tmp_path / "out" / "dest", retry=FAST)
    message = str(info.value)
    assert f"no source could supply {name}" in message
    assert "system copy" in message and "expected " + "0" * 64 in message
    assert "HTTP 404" in message
    assert message.count("SHA-256 of content is") == 2  # system copy and the second URL
    leftovers = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert leftovers == []  # no dest, no staging folder, no .part to resume wrong bytes from


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
    fetched = fetch_dataset(spec, tmp_path / "out" / "dest", source_dir=str(corrupt))
    assert {how.source for how in fetched.values()} == {"system copy"}


def test_unreachable_network_is_reported(tmp_path: Path):
    spec = replace(FASHION_MNIST, system_dir=str(tmp_path / "none"), urls=("http://127.0.0.1:9/",))
    with pytest.raises(DownloadError, match=r"unreachable \(.*; nothing kept"):  # no bytes, no .part to resume
        fetch_dataset(spec, tmp_path / "dest", retry=FAST)
    assert not list(tmp_path.rglob("*.part"))


def test_a_cut_connection_resumes_with_a_range_request(big_file: Path, tmp_path: Path):
    with serve(big_file.parent, cut_after={big_file.name: 1_500_000}) as server:
        fetched = fetch_dataset(_archive_spec(big_file, server.url), tmp_path / "dest", retry=FAST)
    assert (tmp_path / "dest" / big_file.name).read_bytes() == big_file.read_bytes()
    assert [(r.range, r.status) for r in server.requests] == [(None, 200), ("bytes=1500000-", 206)]
    assert "resumed at byte 1500000" in fetched[big_file.name].account


def test_a_server_without_range_support_sends_the_whole_file_again(big_file: Path, tmp_path: Path):
    with serve(big_file.parent, ranges=False, cut_after={big_file.name: 1_500_000}) as server:
        fetch_dataset(_archive_spec(big_file, server.url), tmp_path / "dest", retry=FAST)
    assert (tmp_path / "dest" / big_file.name).read_bytes() == big_file.read_bytes()
    assert [r.status for r in server.requests] == [200, 200]


def test_an_interrupted_download_resumes_on_the_next_run(big_file: Path, tmp_path: Path):
    once = Retry(attempts=1, backoff=0, timeout=5)
    with serve(big_file.parent, cut_after={big_file.name: 1_000_000}) as server:
        spec = _archive_spec(big_file, server.url)
        with pytest.raises(DownloadError, match="1000000 bytes kept in .*archive.tar.gz.part to resume from"):
            fetch_dataset(spec, tmp_path / "data" / "dest", retry=once)
        assert not (tmp_path / "data" / "dest").exists()  # nothing where the good file belongs
        fetch_dataset(spec, tmp_path / "data" / "dest", retry=once)  # a later run
    assert (tmp_path / "data" / "dest" / big_file.name).read_bytes() == big_file.read_bytes()
    assert [r.range for r in server.requests] == [None, "bytes=1000000-"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["dest"]


def test_404_on_the_first_mirror_then_the_second_mirror(big_file: Path, tmp_path: Path):
    with serve(big_file.parent) as server:
        spec = replace(_archive_spec(big_file, server.url), urls=(server.url + "gone/", server.url))
        fetched = fetch_dataset(spec, tmp_path / "dest", retry=FAST)
    assert [(r.path, r.status) for r in server.requests] == [("/gone/archive.tar.gz", 404),
                                                             ("/archive.tar.gz", 200)]
    assert fetched[big_file.name].account.endswith(f"from {server.url}{big_file.name}")


def test_checksum_mismatch_names_both_digests_and_keeps_nothing(big_file: Path, tmp_path: Path):
    with serve(big_file.parent) as server:
        spec = _archive_spec(big_file, server.url)
        spec = replace(spec, files={"archive": replace(spec.files["archive"], sha256="ab" * 32)})
        with pytest.raises(DownloadError) as info:
            fetch_dataset(spec, tmp_path / "data" / "dest", retry=FAST)
    actual = hashlib.sha256(big_file.read_bytes()).hexdigest()
    assert f"SHA-256 is {actual}, expected {'ab' * 32}" in str(info.value)
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []


def test_a_truncated_file_fails_on_its_size_before_hashing(big_file: Path, tmp_path: Path):
    source = tmp_path / "mine"
    source.mkdir()
    (source / big_file.name).write_bytes(big_file.read_bytes()[:2_000_000])
    spec = _archive_spec(big_file, "http://127.0.0.1:9/")
    with pytest.raises(DownloadError, match="2000000 bytes, expected 3000000 \\(truncated"):
        fetch_dataset(spec, tmp_path / "dest", source_dir=str(source), retry=Retry(attempts=1, timeout=2))


def test_md5_is_checked_where_it_is_the_only_pin(big_file: Path, tmp_path: Path):
    good_md5 = hashlib.md5(big_file.read_bytes()).hexdigest()
    spec = DatasetSpec("served", "tiny_imagenet", {"archive": RawFile(big_file.name, None, md5=good_md5)}, ())
    fetched = fetch_dataset(spec, tmp_path / "a", source_dir=str(big_file.parent))
    assert fetched[big_file.name].sha256 == hashlib.sha256(big_file.read_bytes()).hexdigest()  # printed to pin
    wrong = replace(spec, files={"archive": RawFile(big_file.name, None, md5="0" * 32)})
    with pytest.raises(DownloadError, match=f"MD5 is {good_md5}, expected {'0' * 32}"):
        fetch_dataset(wrong, tmp_path / "b", source_dir=str(big_file.parent))


def test_a_stream_without_length_stops_at_the_pinned_size_and_keeps_nothing(big_file: Path, tmp_path: Path):
    """Case 7: the server sends the file over and over without Content-Length; the pinned size,
    known before the first byte, ends the transfer at once, without retries or a .part to resume."""
    with serve(big_file.parent, endless=frozenset({big_file.name})) as server:
        with pytest.raises(DownloadError, match="sent more than the 3000000 bytes pinned; stopped there"):
            fetch_dataset(_archive_spec(big_file, server.url), tmp_path / "data" / "dest", retry=FAST)
    assert [r.status for r in server.requests] == [200]  # a definite answer: not retried
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []


def test_an_announced_length_above_the_pinned_size_is_refused_unread(big_file: Path, tmp_path: Path):
    spec = _archive_spec(big_file, "")
    smaller = replace(spec.files["archive"], size=1000)
    with serve(big_file.parent) as server:
        spec = replace(spec, files={"archive": smaller}, urls=(server.url,))
        with pytest.raises(DownloadError, match="announces 3000000 bytes, more than the 1000 pinned; refused unread"):
            fetch_dataset(spec, tmp_path / "data" / "dest", retry=FAST)
    assert len(server.requests) == 1
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []


def test_a_part_file_larger_than_the_pinned_size_is_discarded(big_file: Path, tmp_path: Path):
    part = tmp_path / "data" / ".downloads" / "dest" / f"{big_file.name}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 5_000_000)  # no prefix of a 3 MB file: not resumed from
    with serve(big_file.parent) as server:
        fetch_dataset(_archive_spec(big_file, server.url), tmp_path / "data" / "dest", retry=FAST)
    assert [r.range for r in server.requests] == [None]
    assert (tmp_path / "data" / "dest" / big_file.name).read_bytes() == big_file.read_bytes()


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "larger"])
def test_a_source_dir_file_that_is_no_regular_file_or_too_large_is_refused_unopened(kind: str, big_file: Path,
                                                                                   tmp_path: Path):
    source = tmp_path / "mine"
    source.mkdir()
    origin = source / big_file.name
    if kind == "dev-zero":
        origin.symlink_to("/dev/zero")
    elif kind == "fifo":
        fifo(origin)
    else:
        origin.write_bytes(big_file.read_bytes() + b"more")
    expected = {"dev-zero": "a character device where a file is expected", "fifo": "a FIFO \\(named pipe\\) where",
                "larger": "3000004 bytes, more than the 3000000 expected; refused unread"}[kind]
    with pytest.raises(DownloadError, match=f"data.source_dir .*{expected}"):
        fetch_dataset(_archive_spec(big_file, "http://127.0.0.1:9/"), tmp_path / "data" / "dest",
                      source_dir=str(source), retry=Retry(attempts=1, timeout=2))
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []
