"""Where a command writes, checked when its arguments are parsed: an output named wrongly is
refused in one line before anything runs, not found by the first write (a traceback, half the
outputs, or the end of a benchmark run of many minutes)."""

from __future__ import annotations

import argparse
from pathlib import Path


def folder(text: str) -> Path:
    """An output folder: absent (it is made) or a folder, never an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: exists and is not a folder; name a folder for the outputs")
    return path


def file(text: str) -> Path:
    """An output file: absent or a file, in a folder that exists."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: is a folder; name the file to write")
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: exists and is not a regular file; name a file to write")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: its folder {str(path.parent)!r} does not exist")
    return path
