"""Resumable training state, written atomically after every epoch.

A run killed mid-epoch (SIGKILL, OOM, a lost machine) restarts from its last finished epoch
when the stage runs again, and ends with the same bytes as an uninterrupted run. That needs
everything the rest of the run depends on: weights, optimizer and scheduler state, every RNG
of every process (python, numpy, torch CPU and this process's GPU, and the generator that draws
the data order and the augmentation), the epoch, the history and the best epoch's weights.

A checkpoint names what wrote it (variant, seed, the run's config, how it computed: device,
GPU model, libraries, resolved amp and memory format, process count; droplab's code and the
prepared data), and one written by anything else is refused, never loaded. It is read with
`torch.load(weights_only=True)`: tensors and plain containers only, no code.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import droplab
from droplab import torch_files
from droplab.atomic import atomic_path, regular_file
from droplab.errors import DroplabError

CODE_ROOT = Path(droplab.__file__).parent


class CheckpointError(DroplabError):
    """A checkpoint that must not be resumed from."""


def _sha256(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def code_version() -> str:
    """Digest of every droplab source file: any code change makes old checkpoints foreign."""
    files = sorted(CODE_ROOT.rglob("*.py"))
    return _sha256(f"{path.relative_to(CODE_ROOT)}\0".encode() + path.read_bytes() for path in files)


def data_version(prepared: Path) -> str:
    """The digest of the prepared data, read once per process for each state of its files (a stage
    asks for it once per run, and the files stay as they are while it trains)."""
    files = [regular_file(prepared / name) for name in ("meta.json", "arrays.npz")]
    return _data_digest(prepared, tuple((path.stat().st_size, path.stat().st_mtime_ns) for path in files))


@functools.lru_cache(maxsize=4)
def _data_digest(prepared: Path, _state: tuple) -> str:
    def chunks():
        for name in ("meta.json", "arrays.npz"):
            with open(prepared / name, "rb") as handle:
                while block := handle.read(1 << 24):
                    yield block

    return _sha256(chunks())


def identity(variant: str, seed: int, config: dict[str, Any], prepared: Path) -> dict[str, str]:
    """What a checkpoint must match to be resumed: `config` is everything the run's numbers depend on."""
    return {"variant": variant, "seed": str(seed),
            "config": _sha256([json.dumps(config, sort_keys=True, default=str).encode()]),
            "code": code_version(), "data": data_version(prepared)}


def rng_states(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """This process's generators. Under DDP each rank has its own (its dropout masks), so
    each rank's are gathered into the checkpoint and each rank restores its own."""
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(state), gauss],
            "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "data_order": generator.get_state()}  # draws every epoch's permutation and augmentation


def restore_rng_states(states: dict[str, Any], generator: torch.Generator, device: torch.device) -> None:
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)
    generator.set_state(states["data_order"])


def host_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict (its module versions included) copied to the CPU: where the best
    epoch's weights are always kept, so an uninterrupted run and a resumed one (whose checkpoint
    loads on the CPU) save the same bytes."""
    state = model.state_dict()
    kept = type(state)((name, tensor.detach().to("cpu", copy=True)) for name, tensor in state.items())
    kept._metadata = copy.deepcopy(state._metadata)  # type: ignore[attr-defined]
    return kept


def save(path: Path, expected: dict[str, str], state: dict[str, Any]) -> None:
    """Write atomically: a kill during the write leaves the previous epoch's checkpoint."""
    with atomic_path(path) as tmp:
        torch_files.save({"identity": expected, **state}, tmp)


def load(path: Path, expected: dict[str, str]) -> dict[str, Any] | None:
    """The saved state, None when there is none; CheckpointError when it belongs to another run."""
    if not path.exists():
        return None
    try:
        state = torch_files.load(path, "cpu", "checkpoint", "")
    except DroplabError as exc:
        raise CheckpointError(f"{exc}; delete it to train from scratch") from None
    found = state.get("identity", {}) if isinstance(state, dict) else {}
    differs = [key for key in expected if found.get(key) != expected[key]]
    if differs:
        detail = ", ".join(f"{key} (checkpoint: {str(found.get(key))[:16]}, this run: {expected[key][:16]})"
                           for key in differs)
        raise CheckpointError(f"{path} was written by another run and is not resumed: {detail} differ. "
                              "Delete it to train this run from scratch")
    return state
