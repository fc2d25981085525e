"""Errors a user can act on, and the one way droplab reports them: a single line
`droplab <command>: error: <message>` on stderr, exit status 2, no traceback."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn


class DroplabError(Exception):
    """Bad input or an unreachable source: the message names the file, key or value."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI cancel, `timeout`, torchrun stopping its workers) raised where the process is,
    as Ctrl-C is, so every `finally` runs and no atomic write leaves its temporary file."""


def _interrupted(how: str) -> str:
    """What a stage's user needs to know after an interruption: nothing half-written is left."""
    return (f"interrupted ({how}). Outputs are written only when complete, so the earlier ones are unchanged; a "
            "train stage keeps its last finished epoch under checkpoints/ and the next `dvc repro` resumes from it")


INTERRUPTED = _interrupted("Ctrl-C")
TERMINATED = _interrupted("SIGTERM")
UNWRITTEN = ("Every output is written to a temporary file and moved into place only when complete, so earlier "
             "outputs are unchanged")


def _exit(command: str, message: str) -> NoReturn:
    print(f"droplab {command}: error: {message}", file=sys.stderr)
    sys.exit(2)


@contextmanager
def reported(command: str, *, stage: bool = False) -> Iterator[None]:
    """A DroplabError inside becomes droplab's one-line error. In a pipeline stage (`stage`), so
    do Ctrl-C and an OS error (a full disk, a read-only or missing directory, named), since DVC
    shows the stage's stderr to someone who needs to know what was kept. Anything else is a bug
    and keeps its traceback. SIGTERM is always one line: it is never a bug, and it arrives as an
    exception (Terminated) so that everything in the block cleans up as after Ctrl-C."""
    try:
        with _sigterm_raises():
            yield
    except DroplabError as exc:
        _exit(command, str(exc))
    except Terminated:
        _exit(command, TERMINATED)
    except KeyboardInterrupt:
        if not stage:
            raise
        _exit(command, INTERRUPTED)
    except OSError as exc:
        if not stage:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        _exit(command, f"{where}{exc.strerror or exc}. {UNWRITTEN}")


def _raise_terminated(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated inside the block (Python can set handlers only in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
