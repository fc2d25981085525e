"""A real HTTP server on 127.0.0.1 (ephemeral port) serving a directory, for download tests.

Beyond plain file serving it does what resumable downloads meet in the wild: single byte ranges (206/416),
servers that ignore Range, and connections cut mid-body. Every request is logged so tests can assert what a
client actually sent.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class Request(NamedTuple):
    """One request as the server saw it; `range` is the raw Range header."""

    method: str
    path: str
    range: str | None
    status: int


@dataclass
class Server:
    """A running server: its base URL (trailing slash) and the requests it has answered so far, in order."""

    url: str
    requests: list[Request] = field(default_factory=list)


class _FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, ranges: bool, cut_after: dict[str, int], cut_every: dict[str, int],
                 log: list[Request], endless: frozenset[str] = frozenset()) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.ranges, self.log, self.endless = root.resolve(), ranges, log, endless
        self.cuts = dict(cut_after)  # popped on first use, so only the first GET is cut
        self.cut_every = dict(cut_every)
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _FileServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _status(self, status: HTTPStatus) -> None:
        """Send the status line, logging it first so the log is complete by the time a client sees a response."""
        with self.server.lock:
            self.server.log.append(Request(self.command, self.path, self.headers.get("Range"), int(status)))
        self.send_response(status)

    def _serve(self, body: bool) -> None:
        relative = unquote(urlsplit(self.path).path).lstrip("/")
        target = (self.server.root / relative).resolve()
        if not target.is_relative_to(self.server.root) or not target.is_file():
            self._status(HTTPStatus.NOT_FOUND)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if relative in self.server.endless:
            self._stream_forever(target, body)
            return
        total = target.stat().st_size
        start, end = 0, total - 1
        status = HTTPStatus.OK
        match = _RANGE.fullmatch(self.headers.get("Range", "").strip()) if self.server.ranges else None
        # Like real servers, ignore a Range header that is not a single valid "bytes=START-[END]".
        if match and (not match[2] or int(match[2]) >= int(match[1])):
            if int(match[1]) >= total:
                self._status(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = int(match[1]), min(int(match[2] or total - 1), total - 1)
            status = HTTPStatus.PARTIAL_CONTENT
        self._status(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        elif self.server.ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not body:
            return
        with self.server.lock:
            cut = self.server.cuts.pop(relative, self.server.cut_every.get(relative))
        remaining = end - start + 1 if cut is None else min(cut, end - start + 1)
        with target.open("rb") as source:
            source.seek(start)
            while remaining and (chunk := source.read(min(remaining, 1 << 16))):
                self.wfile.write(chunk)
                remaining -= len(chunk)
        # After a cut body the connection is closed (an orderly FIN, so the client deterministically receives
        # exactly the bytes sent and then sees the stream end before Content-Length).
        self.close_connection = self.close_connection or cut is not None


    def _stream_forever(self, target: Path, body: bool) -> None:
        """200 without Content-Length, then the file's bytes over and over until the client hangs up:
        a hostile or broken server whose length only the client's own bound can stop."""
        self._status(HTTPStatus.OK)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.close_connection = True
        data = target.read_bytes() or b"\0"
        try:
            while body:
                self.wfile.write(data)
        except OSError:  # the client stopped reading: what a bounded client does
            pass


@contextmanager
def serve(root: Path, *, ranges: bool = True, cut_after: dict[str, int] | None = None,
          cut_every: dict[str, int] | None = None, endless: frozenset[str] = frozenset()) -> Iterator[Server]:
    """Serve the files under `root` until the block ends.

    `ranges=False` answers every GET with 200 and the whole file, like servers without range support.
    `cut_after={"a/b.bin": n}` makes the first GET of /a/b.bin announce its full length but send only n bytes of
    body before closing the connection; later requests are served normally. `cut_every` cuts every GET of
    the path that way: a connection that keeps dropping. `endless` paths stream without Content-Length, forever.
    """
    log: list[Request] = []
    server = _FileServer(root, ranges, cut_after or {}, cut_every or {}, log, endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{server.server_address[1]}/", log)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def serve_directory(root: Path, *, ranges: bool = True, cut_after: dict[str, int] | None = None) -> Iterator[str]:
    """Serve `root`; yield its base URL (with a trailing slash). Use `serve` to also see the request log."""
    with serve(root, ranges=ranges, cut_after=cut_after) as server:
        yield server.url
