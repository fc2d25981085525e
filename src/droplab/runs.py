"""The train stage's `foreach` in dvc.yaml: one item per variant, with its home study, its rate
key and its seeds, spelled out.

DVC cannot compute per-study seed counts or which study a variant takes its scale settings
from, and its `matrix` cannot carry a variant's rate key, so `droplab runs` writes the list
into dvc.yaml, between two marker comments. The seeds are in the command line, so adding a
seed reruns that variant's stage. It lives there rather than in a `vars` file because DVC would show every value of a
vars file as a parameter column in `dvc exp show`. Every stage checks that the list still
matches params.yaml, so a stale list stops the pipeline instead of training the old set.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from droplab.atomic import write_text
from droplab.config import Params
from droplab.errors import DroplabError

PIPELINE = Path("dvc.yaml")
BEGIN = "    # runs: generated from params.yaml by `droplab runs` (make runs); do not edit by hand\n"
END = "    # end of runs\n"
BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)


def runs_mapping(params: Params) -> dict[str, dict]:
    """variant -> {study: its home study, p: its rate key, seeds: "0,1,2"} (a string: DVC puts it in the command)."""
    return {name: {"study": params.home_study(name), "p": spec.p, "seeds": ",".join(map(str, params.seeds_of(name)))}
            for name, spec in params.variants.items() if name in params.trained_variants()}


def _block(params: Params) -> str:
    lines = [f"      {name}: {{study: {item['study']}, p: {item['p']}, seeds: \"{item['seeds']}\"}}\n"
             for name, item in runs_mapping(params).items()]
    return BEGIN + "    foreach:\n" + "".join(lines) + END


def runs_block_of(path: Path) -> str:
    """The text of `path`, checked to hold a runs block."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DroplabError(f"{path}: cannot read the pipeline ({exc.strerror or exc})") from None
    if not BLOCK.search(text):
        raise DroplabError(f"{path}: no runs block (the lines from {BEGIN.strip()!r} to {END.strip()!r}) "
                           "in the train stage")
    return text


def write_runs(params: Params, path: Path = PIPELINE) -> int:
    """Rewrite the runs block of `path`; return the number of (variant, seed) runs."""
    write_text(path, BLOCK.sub(lambda _: _block(params), runs_block_of(path)))
    return len(params.runs())


def check_runs(params: Params, path: Path = PIPELINE) -> None:
    """Refuse to run when dvc.yaml's runs no longer spell out params.yaml's."""
    expected = runs_mapping(params)
    try:
        found = yaml.safe_load(path.read_text())["stages"]["train"]["foreach"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise DroplabError(f"{path}: cannot read the train stage's runs ({exc!r})") from None
    if found != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        changed = sorted(name for name in set(expected) & set(found) if expected[name] != found[name])
        details = "; ".join(f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
                            for label, names in (("missing", missing), ("not in params.yaml", extra),
                                                 ("changed", changed)) if names)
        raise DroplabError(f"{path}: the runs are out of date with params.yaml ({details}); run `droplab runs` "
                           "(or `make runs`), then `dvc repro`, and commit dvc.yaml")
