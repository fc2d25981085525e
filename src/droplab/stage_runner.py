"""What every stage script shares: load params.yaml, and report a bad input in one clear line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from droplab.code_deps import check_code_deps
from droplab.config import Params, load_params
from droplab.dvc_yaml import PIPELINE, check_runs, first_difference
from droplab.errors import DroplabError, reported

PARAMS = Path("params.yaml")


def run_stage(stage: str, body: Callable[[Params], object]) -> None:
    """Load params.yaml, check dvc.yaml's runs against it and its code deps against the imports,
    and run `body`; a bad input, Ctrl-C or a failed write ends the stage with one clear line
    (errors.reported)."""
    with reported(stage, stage=True):
        params = load_params(PARAMS)
        check_runs(params)
        check_code_deps(PIPELINE)
        body(params)


def check_params_unchanged(params: Params) -> None:
    """Refuse when params.yaml, read again, no longer gives `params`: it was edited while the stage
    ran, and DVC would record the edited file beside outputs written from the old one."""
    now = load_params(PARAMS)
    if now != params:
        key, was, new = first_difference(params.model_dump(mode="json"), now.model_dump(mode="json")) or ("?", 0, 0)
        raise DroplabError(f"params.yaml changed while the {Path(sys.argv[0]).stem} stage ran: {key} is "
                           f"{json.dumps(new)} now, {json.dumps(was)} when it started; run dvc repro again")


def variant_seeds_arg(params: Params) -> tuple[str, list[int]]:
    """`VARIANT --seeds 0,1,2` from the command line (dvc.yaml's runs block), checked against
    params.yaml: a stale dvc.yaml must not train another set of seeds than params.yaml asks for."""
    usage = f"usage: {Path(sys.argv[0]).name} VARIANT --seeds S1,S2,..."
    if len(sys.argv) != 4 or sys.argv[2] != "--seeds":
        raise DroplabError(usage)
    variant = _known(sys.argv[1], params.variants, "variant", "variants")
    expected = params.seeds_of(variant)
    given = sys.argv[3]
    if given != ",".join(map(str, expected)):
        raise DroplabError(f"--seeds {given}: params.yaml trains {variant} under seeds "
                           f"{','.join(map(str, expected))}; run `droplab runs` to update dvc.yaml")
    return variant, expected


def _known(name: str, names: Iterable[str], kind: str, plural: str) -> str:
    names = list(names)
    if name not in names:
        raise DroplabError(f"unknown {kind} {name!r}; params.yaml {plural}: {', '.join(names)}")
    return name
