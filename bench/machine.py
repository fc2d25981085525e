"""One line naming the machine, so a results table can be read against the hardware it came from."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe() -> str:
    """The load average is there because other work on the machine skews every number."""
    return (f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}, "
            f"1-min load average {os.getloadavg()[0]:.2f}")
