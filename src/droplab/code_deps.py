"""Each stage's code deps in dvc.yaml, derived from the import graph of its script.

A stage must rerun when any droplab module its script can import changes, and only then. Listed
by hand, the same base modules were repeated in all seven stages and drifted as modules came and
went; `droplab runs` now writes them between marker comments, from the script's imports
(followed through droplab, lazy imports inside functions included, each package's __init__
too), and every stage refuses to run while a block differs from what its imports give.
A module inside a package is covered by the package's folder, a top-level module by its file.
The graph is read from the sources of the droplab that runs (the checkout it is installed from,
editable), which is the code the stage scripts import wherever DVC runs them.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from droplab.errors import DroplabError

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout: src/droplab/code_deps.py
# `      # code of stages/x.py: ...` up to `      # end of code`, at the deps list's indentation
BLOCK = re.compile(r"(?P<head>^(?P<indent> *)# code of (?P<script>\S+\.py): generated from its imports by "
                   r"`droplab runs`; do not edit by hand\n)(?P<body>.*?)(?P<end>^(?P=indent)# end of code\n)",
                   re.M | re.S)


def _module_file(src: Path, name: str) -> Path | None:
    """The file of the droplab module `name` under `src`, or None outside droplab."""
    if name != "droplab" and not name.startswith("droplab."):
        return None
    path = src / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


@cache  # seven stages share most of their modules: each file is parsed once per process
def _imports(src: Path, path: Path) -> frozenset[Path]:
    """The droplab module files `path` imports anywhere in it, with the packages on the way."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            found |= {target for end in range(1, len(parts) + 1)
                      if (target := _module_file(src, ".".join(parts[:end]))) is not None}
    return frozenset(found)


def code_deps(script: str, root: Path = SOURCE_ROOT) -> list[str]:
    """`script` (relative to the checkout `root`) and what covers every droplab module it can
    import: the folder of each package it reaches, the file of each top-level module."""
    src = root / "src"
    seen: set[Path] = set()
    pending = list(_imports(src, root / script))
    while pending:
        path = pending.pop()
        if path not in seen:
            seen.add(path)
            pending += _imports(src, path)
    package = src / "droplab"
    covered = {path.relative_to(root).as_posix() if path.parent == package else
               (package / path.relative_to(package).parts[0]).relative_to(root).as_posix() for path in seen}
    files = sorted(dep for dep in covered if dep.endswith(".py"))
    return [script, *files, *sorted(covered - set(files))]


def _body(indent: str, deps: list[str]) -> str:
    return "".join(f"{indent}- {dep}\n" for dep in deps)


def write_code_deps(text: str, root: Path = SOURCE_ROOT) -> str:
    """The pipeline `text` with every code block regenerated from the sources under `root`."""
    def fill(match: re.Match) -> str:
        return match["head"] + _body(match["indent"], code_deps(match["script"], root)) + match["end"]

    return BLOCK.sub(fill, text)


def check_code_deps(path: Path, root: Path = SOURCE_ROOT, only: str | None = None) -> None:
    """Refuse to run when a stage's code block in the pipeline `path` is not what its script's
    imports give (a module added, moved or no longer imported): DVC would not rerun the stage
    when that module changes. `only`: the file name of the one script whose block to check
    (following the imports costs about a quarter second per script)."""
    text = path.read_text()
    stale = [match["script"] for match in BLOCK.finditer(text)
             if only in (None, Path(match["script"]).name)
             and match["body"] != _body(match["indent"], code_deps(match["script"], root))]
    if stale:
        raise DroplabError(f"{path}: the code deps of {', '.join(stale)} are out of date with their imports; run "
                           "`droplab runs` (or `make runs`) and commit dvc.yaml")
