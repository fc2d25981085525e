"""dvc.yaml's deps are right by construction: each stage's deps cover every droplab module its
script can import, and droplab's packages import one way only."""

import ast
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SRC = REPO / "src"
# Each package may import from those before it, never after: a change low down reruns what is
# above it, not the reverse. "base" is the top-level modules every layer may use.
LAYERS = ("base", "data", "models", "config", "training", "analysis", "results", "pipeline", "commands")
LAYER_OF_TOP_LEVEL = {"errors": "base", "atomic": "base", "yaml_file": "base", "kernel_pins": "base",
                      "torch_files": "base", "schema": "base", "run_files": "base", "records": "base",
                      "config": "config",
                      "stage_runner": "pipeline", "dvc_yaml": "pipeline", "__main__": "commands", "__init__": "base"}


def module_file(name: str) -> Path | None:
    """The file of a droplab module name, or None outside droplab."""
    if name != "droplab" and not name.startswith("droplab."):
        return None
    path = SRC / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[Path]:
    """The droplab module files `path` imports, anywhere in it (lazy imports included), with the
    packages that contain them, whose __init__ runs first."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                target = module_file(".".join(parts[:end]))
                if target is not None:
                    found.add(target)
    return found


def closure(script: Path) -> set[Path]:
    seen: set[Path] = set()
    pending = list(imports_of(script))
    while pending:
        path = pending.pop()
        if path not in seen:
            seen.add(path)
            pending += imports_of(path)
    return seen


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _script(stage: dict) -> Path:
    command = stage["do"]["cmd"] if "do" in stage else stage["cmd"]
    return REPO / command.split()[1]


def _deps(stage: dict) -> list[Path]:
    return [REPO / dep for dep in (stage["do"] if "do" in stage else stage)["deps"]]


def uncovered(script: Path, deps: list[Path]) -> list[str]:
    return sorted(str(path.relative_to(REPO)) for path in closure(script)
                  if not any(path == dep or dep in path.parents for dep in deps))


@pytest.mark.parametrize("name", sorted(_stages()))
def test_each_stages_deps_cover_every_droplab_module_its_script_imports(name: str):
    stage = _stages()[name]
    script = _script(stage)
    assert script in _deps(stage), f"{name}: its own script {script.relative_to(REPO)} is not a dep"
    missing = uncovered(script, _deps(stage))
    assert not missing, f"stage {name} imports these but does not list them (or their folder) in deps: {missing}"


def test_the_check_finds_a_module_a_stage_imports_without_listing_it():
    stage = _stages()["train"]
    deps = [dep for dep in _deps(stage) if dep != SRC / "droplab" / "data"]  # the drift the hand lists had
    assert "src/droplab/data/prepare.py" in uncovered(_script(stage), deps)


def _layer(path: Path) -> str:
    parts = path.relative_to(SRC / "droplab").parts
    return LAYER_OF_TOP_LEVEL[path.stem] if len(parts) == 1 else parts[0]


def test_packages_import_only_downwards():
    wrong = []
    for path in sorted((SRC / "droplab").rglob("*.py")):
        mine = LAYERS.index(_layer(path))
        for target in imports_of(path):
            if target.name == "__init__.py" and target.parent == SRC / "droplab":
                continue  # droplab/__init__ pins the CPU kernels; every import runs it
            if LAYERS.index(_layer(target)) > mine:
                wrong.append(f"{_name(path)} ({_layer(path)}) imports {_name(target)} ({_layer(target)})")
    assert not wrong, wrong


def test_the_closure_sees_lazy_imports_and_packages():
    """The check itself: a lazy import inside a function counts, and so does each package's __init__."""
    found = closure(REPO / "stages" / "train.py")
    assert SRC / "droplab" / "models" / "resnet.py" in found  # imported inside models.registry._resnet only
    assert SRC / "droplab" / "training" / "__init__.py" in found
    assert SRC / "droplab" / "__init__.py" in found
