"""Get a dataset's raw files from the first source that has them, verified against pinned digests.

Sources, in order: a directory the user names (`data.source_dir`, then the environment
variable DROPLAB_DATA_DIR), the system copy (Debian's dataset packages), then the official
URLs and their mirrors. A file is moved into place only after its size and digests match, so
a failed attempt never leaves a bad file where a good one belongs. An interrupted transfer
keeps its bytes in data/raw/.downloads/ and resumes from them on the next run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

from droplab.atomic import atomic_path, regular_file
from droplab.data.datasets import DatasetSpec, RawFile
from droplab.data.idx import open_decompressed
from droplab.data.transfer import CHUNK, DEFAULT_RETRY, Retry, byte_limit, download
from droplab.errors import DroplabError

DATA_DIR_ENV = "DROPLAB_DATA_DIR"


class DownloadError(DroplabError):
    pass


@dataclass(frozen=True)
class Source:
    label: str
    location: str  # a directory, or a base URL

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Fetched:
    source: str  # label of the source that supplied the file
    account: str  # how: copied from where, or bytes from which URL
    sha256: str  # of what was verified: record it to pin a dataset that has no SHA-256 yet


def digests(path: Path, raw: RawFile) -> dict[str, str]:
    """SHA-256 and MD5 of the file's bytes, or of its gunzipped content where `raw` pins that."""
    hashers = {"sha256": hashlib.sha256(), "md5": hashlib.md5(usedforsecurity=False)}
    with open_decompressed(path) if raw.content_digest else open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def verify(path: Path, raw: RawFile) -> str:
    """Check size and every pinned digest; return the SHA-256."""
    size = path.stat().st_size
    if raw.size is not None and size != raw.size:
        raise DownloadError(f"{size} bytes, expected {raw.size} (truncated, or not the official file)")
    actual = digests(path, raw)
    of = " of content" if raw.content_digest else ""
    for algorithm, label in (("sha256", "SHA-256"), ("md5", "MD5")):
        expected = getattr(raw, algorithm)
        if expected is not None and actual[algorithm] != expected:
            raise DownloadError(f"{label}{of} is {actual[algorithm]}, expected {expected}")
    return actual["sha256"]


def sources_for(spec: DatasetSpec, source_dir: str | None) -> list[Source]:
    sources = []
    if source_dir:
        sources.append(Source("params data.source_dir", source_dir))
    if os.environ.get(DATA_DIR_ENV):
        sources.append(Source(f"${DATA_DIR_ENV}", os.environ[DATA_DIR_ENV]))
    if spec.system_dir:
        sources.append(Source("system copy", spec.system_dir))
    sources.extend(Source("official URL", url) for url in spec.urls)
    return sources


def _from_directory(source: Source, raw: RawFile, dest: Path) -> Fetched:
    origin = Path(source.location) / raw.name
    limit = byte_limit(raw.size)
    regular_file(origin, limit)  # a FIFO, /dev/zero (through a symlink) or an oversized file: refused unopened
    with atomic_path(dest) as tmp:
        _copy_at_most(origin, tmp, limit)
        sha256 = verify(tmp, raw)
    return Fetched(source.label, f"copied from {origin}", sha256)


def _copy_at_most(origin: Path, dest: Path, limit: int) -> None:
    """Copy `origin` to `dest`, stopping with an error once it passes `limit` bytes (a file that
    grows while it is copied)."""
    copied = 0
    with open(origin, "rb") as source, open(dest, "wb") as out:
        while chunk := source.read(min(CHUNK, limit + 1 - copied)):
            copied += len(chunk)
            if copied > limit:
                raise DownloadError(f"{origin}: more than the {limit} bytes expected; refused")
            out.write(chunk)


def _from_url(source: Source, raw: RawFile, dest: Path, parts: Path, retry: Retry) -> Fetched:
    part = parts / f"{raw.name}.part"
    account = download(source.location + raw.name, part, raw.size, retry)
    try:
        sha256 = verify(part, raw)
    except DownloadError:
        part.unlink()  # wrong bytes must not be resumed from
        raise
    os.replace(part, dest)
    return Fetched(source.label, account, sha256)


def fetch_file(raw: RawFile, dest_dir: Path, sources: list[Source], parts: Path,
               retry: Retry = DEFAULT_RETRY) -> Fetched:
    """Put a verified copy of `raw` at dest_dir/raw.name, from the first source that has one."""
    failures = []
    for source in sources:
        try:
            if source.is_url:
                return _from_url(source, raw, dest_dir / raw.name, parts, retry)
            return _from_directory(source, raw, dest_dir / raw.name)
        except (OSError, EOFError, zlib.error, DroplabError) as exc:
            failures.append(f"  {source.label} {source.location}: {_reason(exc)}")
    raise DownloadError(f"no source could supply {raw.name}; tried:\n" + "\n".join(failures))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    return str(exc) or type(exc).__name__


def fetch_dataset(spec: DatasetSpec, dest: str | Path, source_dir: str | None = None,
                  retry: Retry = DEFAULT_RETRY) -> dict[str, Fetched]:
    """Fetch every raw file of `spec` into `dest`; return file name -> how it was fetched.

    Files gather in a hidden sibling folder that replaces `dest` only once all of them
    verified, so a failure leaves no partial dataset and an earlier good `dest` intact.
    """
    dest = Path(dest)
    staging = dest.with_name(f".{dest.name}.partial")
    parts = dest.parent / ".downloads" / dest.name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        sources = sources_for(spec, source_dir)
        fetched = {raw.name: fetch_file(raw, staging, sources, parts, retry) for raw in spec.files.values()}
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
        shutil.rmtree(parts, ignore_errors=True)
        _remove_if_empty(parts.parent)
        return fetched
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_if_empty(directory: Path) -> None:
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
