"""One HTTP(S) transfer into a `.part` file: resumed with Range, retried with backoff.

Kept apart from source selection and verification (download.py) because this is the part
that deals with networks misbehaving: cut connections, servers without Range support,
transient 5xx answers.
"""

from __future__ import annotations

import http.client
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from droplab.errors import DroplabError

CHUNK = 1 << 20
USER_AGENT = "droplab (+https://dvc.org)"
# the most bytes a file whose size is not pinned may have: more than any dataset droplab reads
UNPINNED_LIMIT = 2 << 30


def byte_limit(size: int | None) -> int:
    """The most bytes a transfer or copy of a file pinned at `size` may write, known before the first."""
    return size if size is not None else UNPINNED_LIMIT


class TransferError(DroplabError):
    """This URL cannot supply the file (after retries, or a definite answer such as 404)."""


class TooLarge(TransferError):
    """More bytes than the pinned size: not retried, and nothing kept to resume from."""


class _Incomplete(Exception):
    """The server closed the connection before sending everything it announced."""


@dataclass(frozen=True)
class Retry:
    attempts: int = 5
    backoff: float = 1.0  # seconds before the second attempt, doubled after each failure
    timeout: float = 60.0  # seconds without data before a connection counts as dead


DEFAULT_RETRY = Retry()


def download(url: str, part: Path, size: int | None = None, retry: Retry = DEFAULT_RETRY) -> str:
    """Stream `url` into `part`, resuming what `part` already holds; return a one-line account.

    Only transient failures are retried (connection errors, cut transfers, timeouts, 5xx,
    429); a 404 or 403 is this mirror's definite answer, so the caller moves on at once, and so
    is a body longer than `size` (or UNPINNED_LIMIT): it stops there, and its `.part` is deleted.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    if part.exists() and part.stat().st_size > byte_limit(size):  # not a prefix of the pinned file
        part.unlink()
    failures: list[str] = []
    for attempt in range(retry.attempts):
        if attempt:
            time.sleep(retry.backoff * 2 ** (attempt - 1))
        try:
            return _transfer(url, part, size, retry.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # our .part is not a prefix the server can continue: start over
                part.unlink(missing_ok=True)
            elif exc.code < 500 and exc.code != 429:
                raise TransferError(f"HTTP {exc.code} {exc.reason}") from None
            failures.append(f"HTTP {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            failures.append(f"unreachable ({exc.reason})")
        except (OSError, http.client.HTTPException, _Incomplete) as exc:
            failures.append(str(exc) or type(exc).__name__)
    kept = part.stat().st_size if part.exists() else 0
    resume = f"{kept} bytes kept in {part} to resume from next time" if kept else "nothing kept"
    raise TransferError(f"gave up after {retry.attempts} attempts ({'; '.join(failures)}); {resume}")


def _transfer(url: str, part: Path, size: int | None, timeout: float) -> str:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        resumed = have > 0 and response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            part.unlink()
            raise _Incomplete(f"server answered Range bytes={have}- with {response.headers.get('Content-Range')}")
        start = have if resumed else 0  # a 200 to a Range request is the whole file again
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else size
        limit = byte_limit(size)
        if total is not None and total > limit:
            part.unlink(missing_ok=True)
            raise TooLarge(f"the server announces {total} bytes, more than the {limit} pinned; refused unread")
        with open(part, "ab" if resumed else "wb") as out, _progress(part.name.removesuffix(".part"),
                                                                      total, start) as bar:
            got = start
            while chunk := response.read(min(CHUNK, limit + 1 - got)):
                out.write(chunk)
                bar.update(len(chunk))
                got += len(chunk)
                if got > limit:
                    break
    got = part.stat().st_size
    if got > limit:
        part.unlink()
        raise TooLarge(f"the server sent more than the {limit} bytes pinned; stopped there and kept nothing")
    if total is not None and got < total:
        raise _Incomplete(f"connection closed after {got} of {total} bytes")
    return f"{got} bytes from {url}" + (f" (resumed at byte {start})" if resumed else "")


def _progress(name: str, total: int | None, initial: int) -> tqdm:
    """A byte-counting bar on a terminal; silent in logs, where the caller prints one line."""
    return tqdm(total=total, initial=initial, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not sys.stderr.isatty(), leave=False, file=sys.stderr)
