"""Reading params.yaml into `Params`, every problem reported at once for the person who edits it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from droplab.config.params import Params
from droplab.config.variants import MODEL_VARIANTS
from droplab.errors import DroplabError
from droplab.schema import problem_lines
from droplab.yaml_file import read_yaml


class ConfigError(DroplabError):
    """A params.yaml problem, phrased for the person who edits params.yaml."""


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = problem_lines(exc.errors(), Params, MODEL_VARIANTS)
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(f"  {line}" for line in lines)) from None


def read_params(path: str | Path = "params.yaml") -> Any:
    """params.yaml as written (a missing file, a non-UTF-8 byte, a repeated key: one clear error)."""
    return read_yaml(path, ConfigError)


def load_params(path: str | Path = "params.yaml") -> Params:
    return parse_params(read_params(path), str(path))
