"""dvc.yaml's deps are right by construction: each stage's deps cover every droplab module its
script can import, and droplab's packages import one way only."""

import ast
from pathlib import Path

import pytest
import yaml

from droplab.code_deps import BLOCK as CODE_BLOCK
from droplab.code_deps import check_code_deps, code_deps, write_code_deps
from droplab.errors import DroplabError

from conftest import REPO

SRC = REPO / "src"
# Each package may import from those before it, never after: a change low down reruns what is
# above it, not the reverse. "base" is the top-level modules every layer may use.
LAYERS = ("base", "data", "models", "config", "training", "analysis", "results", "pipeline", "commands")
LAYER_OF_TOP_LEVEL = {"errors": "base", "atomic": "base", "yaml_file": "base", "kernel_pins": "base",
                      "torch_files": "base", "schema": "base", "run_files": "base", "records": "base",
                      "metric_table": "base", "confusion_file": "base",
                      "code_deps": "pipeline",
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
    assert SRC / "droplab" / "models" / "resnet.py" in found  # imported inside resnet_spec.build_resnet only
    assert SRC / "droplab" / "training" / "__init__.py" in found
    assert SRC / "droplab" / "__init__.py" in found


def _code_block(stage: dict) -> list[str]:
    """A stage's deps that are code: its script and what is under src/."""
    return [dep for dep in (stage["do"] if "do" in stage else stage)["deps"] if dep.startswith(("stages/", "src/"))]


@pytest.mark.parametrize("name", sorted(_stages()))
def test_each_stage_lists_only_code_it_imports(name: str):
    """The generated deps are exact, by this file's own closure: no folder or module a stage's
    script never imports (which would rerun it for nothing)."""
    stage = _stages()[name]
    imported = closure(_script(stage)) | {_script(stage)}
    unused = [dep for dep in _code_block(stage) if not any(path == REPO / dep or REPO / dep in path.parents
                                                           for path in imported)]
    assert not unused, f"stage {name} lists code it does not import: {unused}"


def test_the_code_deps_block_is_what_droplab_runs_writes():
    check_code_deps(REPO / "dvc.yaml")
    text = (REPO / "dvc.yaml").read_text()
    assert write_code_deps(text) == text
    assert len(CODE_BLOCK.findall(text)) == len(_stages())  # one generated block per stage


def test_a_stale_code_deps_block_stops_every_stage_naming_it(tmp_path: Path):
    text = (REPO / "dvc.yaml").read_text()
    stale = text.replace("      - src/droplab/results\n", "", 1)  # the first stage that imports it: validate
    assert stale != text
    (tmp_path / "dvc.yaml").write_text(stale)
    with pytest.raises(DroplabError, match=r"dvc.yaml: the code deps of stages/validate.py are out of date with "
                                           r"their imports; run `droplab runs`"):
        check_code_deps(tmp_path / "dvc.yaml")
    assert write_code_deps(stale) == text  # `droplab runs` puts it back


def test_a_stage_checks_its_own_block_and_validate_checks_every_one(tmp_path: Path):
    """validate, which DVC runs before any other stage, refuses a stale block of any stage; another
    stage refuses its own and leaves the rest to validate."""
    text = (REPO / "dvc.yaml").read_text()
    report_block = text[text.index("# code of stages/report.py"):]
    stale = text[:-len(report_block)] + report_block.replace("      - src/droplab/results\n", "", 1)
    assert stale != text
    (tmp_path / "dvc.yaml").write_text(stale)
    check_code_deps(tmp_path / "dvc.yaml", only="train.py")
    for only in ("report.py", None):
        with pytest.raises(DroplabError, match=r"the code deps of stages/report.py are out of date"):
            check_code_deps(tmp_path / "dvc.yaml", only=only)


def test_code_deps_follow_a_lazy_import_to_its_package_folder(tmp_path: Path):
    """In a made-up checkout: a script importing one top-level module that imports a package's
    module inside a function gets the module's file and the package's folder."""
    package = tmp_path / "src/droplab"
    (package / "tools").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tools/__init__.py").write_text("")
    (package / "tools/deep.py").write_text("X = 1\n")
    (package / "top.py").write_text("def f():\n    from droplab.tools import deep\n    return deep.X\n")
    (package / "unused.py").write_text("")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages/s.py").write_text("import os\nfrom droplab.top import f\n")
    assert code_deps("stages/s.py", tmp_path) == ["stages/s.py", "src/droplab/__init__.py", "src/droplab/top.py",
                                                  "src/droplab/tools"]
