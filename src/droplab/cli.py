"""What every stage script shares: load params.yaml, and turn a DroplabError into one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from droplab.config import Params, Run, load_params
from droplab.errors import DroplabError
from droplab.runs import check_runs

PARAMS = Path("params.yaml")


def run_stage(stage: str, body: Callable[[Params], object]) -> None:
    try:
        params = load_params(PARAMS)
        check_runs(params)
        body(params)
    except DroplabError as exc:
        print(f"droplab {stage}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"droplab {stage}: error: interrupted (Ctrl-C). Outputs are written only when complete, so the earlier "
              "ones are unchanged; a train stage keeps its last finished epoch under checkpoints/ and the next "
              "`dvc repro` resumes from it", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a full disk, a read-only or missing directory: name the file, skip the traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"droplab {stage}: error: {where}{exc.strerror or exc}. Every output is written to a temporary "
              "file and moved into place only when complete, so earlier outputs are unchanged", file=sys.stderr)
        sys.exit(2)


def variant_arg(params: Params) -> str:
    """The variant named on the command line, checked against params.yaml."""
    if len(sys.argv) != 2:
        raise DroplabError(f"usage: {Path(sys.argv[0]).name} VARIANT")
    return _known(sys.argv[1], params.variants, "variant", "variants")


def run_arg(params: Params) -> Run:
    """The run (`<variant>-seed<seed>`) named on the command line, checked against params.yaml."""
    if len(sys.argv) != 2:
        raise DroplabError(f"usage: {Path(sys.argv[0]).name} VARIANT-seedSEED")
    runs = params.runs()
    return runs[_known(sys.argv[1], runs, "run", "runs")]


def _known(name: str, names: Iterable[str], kind: str, plural: str) -> str:
    names = list(names)
    if name not in names:
        raise DroplabError(f"unknown {kind} {name!r}; params.yaml {plural}: {', '.join(names)}")
    return name
