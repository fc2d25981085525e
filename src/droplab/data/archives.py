"""Reading members out of tar.gz and zip archives, refusing any member that could escape.

droplab never extracts to disk: readers take the members they need straight from the
archive. Every member name is still checked first, and an archive holding an absolute path,
a `..` component or a link that points outside it is refused as a whole, naming the member,
because such an archive is malicious or broken, and either way not the official file.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from droplab.atomic import regular_file
from droplab.errors import DroplabError


class ArchiveError(DroplabError):
    pass


def check_member(archive: Path, name: str, link_target: str | None = None) -> None:
    """Refuse a member name (and link target) that would land outside the archive's folder."""
    path = _posix(name)
    if _is_absolute(name):
        raise ArchiveError(f"{archive}: refused member {name!r}: absolute path")
    if ".." in path.parts:
        raise ArchiveError(f"{archive}: refused member {name!r}: '..' escapes the target folder")
    if link_target is not None and (_is_absolute(link_target) or _escapes(path.parent / _posix(link_target))):
        raise ArchiveError(f"{archive}: refused link {name!r} -> {link_target!r}: points outside the archive")


def _posix(name: str) -> PurePosixPath:
    return PurePosixPath(name.replace("\\", "/"))


def _is_absolute(name: str) -> bool:
    posix = name.replace("\\", "/")
    return posix.startswith("/") or (len(posix) > 1 and posix[1] == ":")  # POSIX root or a drive letter


def _escapes(path: PurePosixPath) -> bool:
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def read_tar_members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    """The bytes of the `wanted` members of a tar.gz, in one streaming pass over it."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(regular_file(archive), mode="r|gz") as tar:
            for member in tar:
                check_member(archive, member.name, member.linkname if member.issym() else None)
                if member.islnk():  # a hard link names another member
                    check_member(archive, member.linkname)
                if member.isdev() or member.isfifo():
                    raise ArchiveError(f"{archive}: refused member {member.name!r}: device or pipe")
                if member.name in wanted and member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None  # isfile() members always have data
                    found[member.name] = handle.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArchiveError(f"{archive}: truncated or corrupt tar.gz ({exc})") from None
    missing = sorted(wanted - set(found))
    if missing:
        raise ArchiveError(f"{archive}: no member {missing[0]!r}; is this the right archive?")
    return found


@contextmanager
def open_zip(archive: Path) -> Iterator[zipfile.ZipFile]:
    """Open a zip whose every member name (and link) has been checked."""
    try:
        with zipfile.ZipFile(regular_file(archive)) as zf:
            for info in zf.infolist():
                is_link = stat.S_ISLNK(info.external_attr >> 16)
                check_member(archive, info.filename, zf.read(info).decode() if is_link else None)
            yield zf
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ArchiveError(f"{archive}: truncated or corrupt zip ({exc})") from None


def read_zip_member(zf: zipfile.ZipFile, archive: Path, name: str) -> bytes:
    try:
        return zf.read(name)
    except KeyError:
        raise ArchiveError(f"{archive}: no member {name!r}; is this the right archive?") from None
