"""The one in-memory layout every dataset reader produces, so nothing after it is dataset-specific."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Arrays:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64


@dataclass(frozen=True)
class RawDataset:
    train: Arrays  # the official training split
    test: Arrays  # the official labelled held-out split
    classes: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())  # lines for the stage's output (e.g. decode speed)
