"""Errors a user can act on, and the one way droplab reports them: a single line
`droplab <command>: error: <message>` on stderr, exit status 2, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn


class DroplabError(Exception):
    """Bad input or an unreachable source: the message names the file, key or value."""


# what a stage's user needs to know after Ctrl-C or a failed write: nothing half-written is left
INTERRUPTED = ("interrupted (Ctrl-C). Outputs are written only when complete, so the earlier ones are unchanged; a "
               "train stage keeps its last finished epoch under checkpoints/ and the next `dvc repro` resumes from it")
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
    and keeps its traceback."""
    try:
        yield
    except DroplabError as exc:
        _exit(command, str(exc))
    except KeyboardInterrupt:
        if not stage:
            raise
        _exit(command, INTERRUPTED)
    except OSError as exc:
        if not stage:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        _exit(command, f"{where}{exc.strerror or exc}. {UNWRITTEN}")
