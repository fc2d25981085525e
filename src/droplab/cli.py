"""What every stage script shares: load params.yaml, and turn a DroplabError into one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from droplab.config import Params, load_params
from droplab.errors import DroplabError

PARAMS = Path("params.yaml")


def run_stage(stage: str, body: Callable[[Params], object]) -> None:
    try:
        body(load_params(PARAMS))
    except DroplabError as exc:
        print(f"droplab {stage}: error: {exc}", file=sys.stderr)
        sys.exit(2)


def variant_arg(params: Params) -> str:
    """The variant named on the command line, checked against params.yaml."""
    if len(sys.argv) != 2:
        raise DroplabError(f"usage: {Path(sys.argv[0]).name} VARIANT")
    name = sys.argv[1]
    if name not in params.variants:
        raise DroplabError(f"unknown variant {name!r}; params.yaml variants: {', '.join(params.variants)}")
    return name
