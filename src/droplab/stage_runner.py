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


def run_stage(stage: str, body: Callable[[Params], object], records_params: bool = True) -> None:
    """Load params.yaml, check dvc.yaml's runs against it and the code deps against the imports
    (validate, which DVC runs first, every stage's; the others their own), and run `body`; a bad
    input, Ctrl-C or a failed write ends the stage with one clear line (errors.reported).

    `records_params`: DVC records params.yaml (the file, or keys of it) as the stage's dependency
    when the stage ends, so the stage fails if the file changed while it ran: DVC then records
    neither the edited file beside outputs computed from the old one, nor a run-cache entry. The
    train stages record their resolved config instead (data/configs), and check that at start."""
    with reported(stage, stage=True):
        params = load_params(PARAMS)
        check_runs(params)
        check_code_deps(PIPELINE, only=None if stage == "validate" else Path(sys.argv[0]).name)
        body(params)
        if records_params:
            check_params_unchanged(params, stage)


def check_params_unchanged(params: Params, stage: str) -> None:
    """Refuse when params.yaml, read again, no longer gives `params`: it was edited while the stage
    ran, and DVC would record the edited file beside outputs written from the old one."""
    now = load_params(PARAMS)
    if now != params:
        key, was, new = first_difference(params.model_dump(mode="json"), now.model_dump(mode="json")) or ("?", 0, 0)
        raise DroplabError(f"params.yaml changed while the {stage} stage ran: {key} is "
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
