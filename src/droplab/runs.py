"""runs.yaml: the (variant, seed) pairs of params.yaml, spelled out for dvc.yaml's `foreach`.

DVC cannot compute a product of variants and per-study seed counts, and its `matrix` cannot
carry a variant's rate key, so droplab writes the list for it. Every stage checks that the
file still matches params.yaml, so a stale list stops the pipeline instead of silently
training the old set.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from droplab.atomic import write_text
from droplab.config import Params
from droplab.errors import DroplabError

RUNS = Path("runs.yaml")
HEADER = ("# Generated from params.yaml by `droplab runs` (make runs): do not edit.\n"
          "# One DVC stage train@<run> per entry; dvc.yaml reads this file through `vars`.\n")


def runs_document(params: Params) -> dict:
    return {"runs": {name: run.model_dump() for name, run in params.runs().items()}}


def write_runs(params: Params, path: Path = RUNS) -> dict:
    document = runs_document(params)
    write_text(path, HEADER + yaml.safe_dump(document, sort_keys=False, default_flow_style=None))
    return document


def check_runs(params: Params, path: Path = RUNS) -> None:
    """Refuse to run when runs.yaml no longer spells out params.yaml's runs."""
    expected = runs_document(params)["runs"]
    try:
        found = (yaml.safe_load(path.read_text()) or {}).get("runs") or {}
    except FileNotFoundError:
        found = {}
    except (yaml.YAMLError, AttributeError) as exc:
        raise DroplabError(f"{path}: not a runs file ({exc}); regenerate it with `droplab runs`") from None
    if found != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        changed = sorted(name for name in set(expected) & set(found) if expected[name] != found[name])
        details = "; ".join(f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
                            for label, names in (("missing", missing), ("not in params.yaml", extra),
                                                 ("changed", changed)) if names)
        raise DroplabError(f"{path} is out of date with params.yaml ({details}); run `droplab runs` "
                           "(or `make runs`), then `dvc repro`, and commit runs.yaml")
