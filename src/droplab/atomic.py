"""Atomic writes: a reader sees the old file or the whole new one, never half of either."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from droplab.errors import DroplabError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's temporary files are 0600

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def regular_file(path: str | Path, max_size: int | None = None) -> Path:
    """`path` if it is a regular file (symlinks followed) of at most `max_size` bytes, told by its
    metadata alone: opening a FIFO waits for a writer forever and /dev/zero never ends, so anything
    else is refused before it is opened. A missing file raises FileNotFoundError, for the caller."""
    path = Path(path)
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise DroplabError(f"{path}: {kind} where a file is expected "
                           "(droplab reads only regular files)")
    if max_size is not None and info.st_size > max_size:
        raise DroplabError(f"{path}: {info.st_size} bytes, more than the {max_size} expected; refused unread")
    return path


@contextmanager
def atomic_files() -> Iterator[Callable[[str | Path], Path]]:
    """Several files that appear together or not at all. `stage(path)` gives the temporary path to
    write `path` to; every file moves into place when the block succeeds (a rename needs no free
    space), none when anything in it fails, e.g. a full disk half way through."""
    staged: dict[Path, Path] = {}

    def stage(path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, FILE_MODE)
        os.close(fd)
        staged[path] = Path(tmp)
        return Path(tmp)

    try:
        yield stage
        for path, tmp in staged.items():
            os.replace(tmp, path)
    except OSError as exc:  # name the output, not its temporary file
        target = next((path for path, tmp in staged.items() if str(tmp) == exc.filename), None)
        if target is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    with atomic_files() as stage:
        yield stage(path)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json_text(data))


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)
