"""Model and checkpoint files: written so their bytes repeat, read weights-only with one clear error.

torch.save to a path names the archive's inner folder after the file, and droplab writes to a
random temporary name before renaming, so every rerun changed the model's md5 (and made DVC
rerun the stages that read it). Saved through memory, the folder is always `archive`; the file write is then
plain Python I/O, so a full disk is an OSError naming the file, not torch's RuntimeError.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from droplab.atomic import regular_file
from droplab.errors import DroplabError


def save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    Path(path).write_bytes(buffer.getvalue())


def _reason(exc: Exception) -> str:
    """torch's own reason, without its advice to load with weights_only=False: loading with it
    would run whatever code the file holds, the one thing a user must not do."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    specific = [line for line in lines if "WeightsUnpickler error" in line]
    reason = (specific or lines or [""])[0]
    reason = reason.split("WeightsUnpickler error:", 1)[-1].strip()
    if "weights_only" in reason or "can still be loaded" in reason:
        reason = "it holds objects other than tensors and plain containers"
    return f"{type(exc).__name__}: {reason[:200]}"


def load(path: Path, device: torch.device | str, what: str, missing: str) -> Any:
    """The file's contents, loaded weights-only (tensors and plain containers, never code)."""
    try:
        return torch.load(regular_file(path), map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DroplabError(f"{path}: no {what}; {missing}") from None
    except DroplabError:  # a FIFO or device, refused unopened
        raise
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError, BadZipFile: one answer
        raise DroplabError(f"{path}: not a droplab {what}; it is loaded weights-only and refused "
                           f"({_reason(exc)})") from None


def load_model_file(path: Path, device: torch.device, variant: str) -> dict:
    """A trained model file of `variant`, loaded weights-only: tensors and plain containers, never code."""
    content = load(path, device, "model file", "run its train stage first")
    if not isinstance(content, dict) or not isinstance(content.get("state_dict"), dict):
        raise DroplabError(f"{path}: not a droplab model file: expected the train stage's dict with a "
                           f"state_dict, found {type(content).__name__}; rerun train@{variant}")
    if content.get("variant") != variant:
        raise DroplabError(f"{path}: holds a model of variant {content.get('variant')!r}, not {variant!r}; "
                           "rerun its train stage")
    return content
