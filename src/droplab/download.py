"""Get a dataset's raw files from the first source that has them, verified by SHA-256.

Sources, in order: a directory the user names (`data.source_dir`, then the environment
variable DROPLAB_DATA_DIR), the system copy (Debian's dataset packages), then the official
URLs. A file is moved into place only after its hash matches, so a failed attempt never
leaves a bad file where a good one belongs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from droplab.atomic import atomic_path
from droplab.datasets import DatasetSpec, RawFile
from droplab.errors import DroplabError
from droplab.idx import open_decompressed

CHUNK = 1 << 20
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


def content_sha256(path: Path) -> str:
    """SHA-256 of the decompressed content, so recompressed copies still verify."""
    digest = hashlib.sha256()
    with open_decompressed(path) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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


def _copy_or_download(source: Source, raw: RawFile, tmp: Path, timeout: float) -> None:
    if source.is_url:
        with urllib.request.urlopen(source.location + raw.name, timeout=timeout) as response:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, CHUNK)
    else:
        shutil.copyfile(Path(source.location) / raw.name, tmp)


def fetch_file(raw: RawFile, dest: Path, sources: list[Source], timeout: float = 60.0) -> Source:
    """Put a verified copy of `raw` at dest/raw.name; return the source that supplied it."""
    failures = []
    for source in sources:
        try:
            with atomic_path(dest / raw.name) as tmp:
                _copy_or_download(source, raw, tmp, timeout)
                actual = content_sha256(tmp)
                if actual != raw.sha256:
                    raise DownloadError(f"SHA-256 of content is {actual}, expected {raw.sha256}")
            return source
        except (OSError, EOFError, zlib.error, urllib.error.URLError, DownloadError) as exc:
            failures.append(f"  {source.label} {source.location}: {_reason(exc)}")
    raise DownloadError(f"no source could supply {raw.name}; tried:\n" + "\n".join(failures))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    return str(exc) or type(exc).__name__


def fetch_dataset(spec: DatasetSpec, dest: str | Path, source_dir: str | None = None) -> dict[str, str]:
    """Fetch every raw file of `spec` into `dest`; return file name -> source label.

    Files gather in a hidden sibling folder that replaces `dest` only once all of them
    verified, so a failure leaves no partial dataset and an earlier good `dest` intact.
    """
    dest = Path(dest)
    partial = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        sources = sources_for(spec, source_dir)
        used = {raw.name: fetch_file(raw, partial, sources).label for raw in spec.files.values()}
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(partial, dest)
        return used
    finally:
        shutil.rmtree(partial, ignore_errors=True)
