"""`droplab try`: the tiny pipeline in a throwaway copy that leaves the checkout untouched.

End to end in test_pipeline.py, run from a copy of a user's clone: its kept copy is the clone most
of those tests share."""

import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml

from droplab.__main__ import main as droplab_main
from droplab.errors import DroplabError
from droplab.pipeline import tryout
from droplab.pipeline.tiny import shrink

from conftest import REPO


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def file_digests(root: Path) -> dict[str, str]:
    """Every file git lists in `root`, by its sha256."""
    return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in _git(root, "ls-files").split()}


def test_the_copy_has_the_code_and_the_tiny_params_but_no_result(tmp_path: Path, real_params):
    repo = tmp_path / "repo"
    for rel, text in {"params.yaml": yaml.safe_dump(real_params), "src/a.py": "x = 1\n", "dvc.lock": "stale\n",
                      "metrics/summary.json": "{}\n", "report/summary.md": "old\n", "plots/claims.tsv": "c\n"}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "add", "-A")
    before = file_digests(repo)
    tryout.make_copy(repo, tmp_path / "copy", tryout.tiny_params(repo, None))
    copied = sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*")
                    if p.is_file() and ".git" not in p.parts)
    assert copied == ["params.yaml", "src/a.py"]
    assert yaml.safe_load((tmp_path / "copy/params.yaml").read_text()) == shrink(real_params)
    assert _git(tmp_path / "copy", "status", "--porcelain") == ""  # committed in its own repository
    assert file_digests(repo) == before


def test_a_kept_folder_that_holds_files_is_refused(tmp_path: Path):
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine\n")
    with pytest.raises(DroplabError, match="the folder exists and is not empty"):
        tryout.run(REPO, tmp_path / "kept")
    assert (tmp_path / "kept" / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize(("args", "chosen"), [
    ([], tryout.DEFAULT_STUDY),
    (["--study", "s4_d2l"], "s4_d2l"),
    (["--study", "all"], None),
    (["--variants", "s2_mlp, lenet_bn_dropout"], ["s2_mlp", "lenet_bn_dropout"]),
])
def test_the_command_line_chooses_a_study_all_or_the_variants_named(args, chosen, monkeypatch):
    calls = []
    monkeypatch.setattr(tryout, "run", lambda *call: calls.append(call))
    droplab_main(["try", *args])
    assert calls == [(Path.cwd(), None, chosen)]


def test_the_default_study_and_the_variants_named_are_what_the_copy_trains(real_params):
    by_study = tryout.tiny_params(REPO, tryout.DEFAULT_STUDY)
    assert by_study == shrink(real_params, keep=real_params["studies"][tryout.DEFAULT_STUDY]["variants"])
    assert list(by_study["variants"]) == real_params["studies"][tryout.DEFAULT_STUDY]["variants"]
    named = tryout.tiny_params(REPO, ["lenet_bn_dropout", "s2_mlp"])
    assert named == shrink(real_params, keep=["lenet_bn_dropout", "s2_mlp"])
    assert list(named["variants"]) == ["s2_mlp", "lenet_bn_dropout"]  # in params.yaml's order
    assert {variant for study in named["studies"].values() for variant in study["variants"]} == set(named["variants"])
    with_skipped = tryout.tiny_params(REPO, "s3_heads")  # a study keeps the variants its scale skips, and
    assert "s3_resnet50_avg" in with_skipped["variants"]  # the report says why they did not train


@pytest.mark.parametrize(("variants", "refusal"), [
    (["s2_cnn", "s2_mpl"], "--variants: 's2_mpl' not in params.yaml variants; known: "),
    (["s2_cnn", "s3_resnet50_avg"], "--variants: 's3_resnet50_avg' not trained at scale cpu"),  # its study skips it
    (["s3_resnet50_avg"], "shrunk with --variants s3_resnet50_avg is invalid:\n  no variant trains at scale cpu"),
])
def test_named_variants_that_cannot_train_are_refused_before_any_folder_is_made(variants, refusal, tmp_path: Path):
    with pytest.raises(DroplabError, match=refusal):
        tryout.run(REPO, tmp_path / "kept", variants)
    assert not (tmp_path / "kept").exists()


@pytest.mark.parametrize("command", [["try", "--variants", "s2_cnn"], ["tiny", "--keep", "s2_cnn"]])
def test_a_params_file_without_a_required_section_is_named_before_it_is_shrunk(command, real_params, tmp_path: Path,
                                                                              monkeypatch, capsys):
    del real_params["data"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(real_params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        droplab_main(command)
    message = capsys.readouterr().err
    assert "params.yaml is invalid:" in message and "data: required key is missing" in message, message
    assert "Traceback" not in message and not (tmp_path / "dvc.yaml").exists()
