"""Stage scripts turn bad input into one clear line and a non-zero exit, never a traceback."""

import importlib
import importlib.metadata
import os
import runpy
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from droplab import atomic
from droplab.__main__ import main as droplab_main
from droplab.config import ConfigError, load_params, parse_params
from droplab.dvc_yaml import CONFIGS, check_runs, write_configs, write_runs
from droplab.pipeline.tiny import shrink
from droplab.yaml_file import read_yaml

from conftest import REPO


def write_params(directory: Path, raw: dict) -> None:
    """params.yaml, and where it parses, dvc.yaml with the runs that go with it (as `droplab runs` writes
    them) and each train stage's data/configs/<variant>.json (as the validate stage writes them)."""
    (directory / "params.yaml").write_text(yaml.safe_dump(raw))
    (directory / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    try:
        params = parse_params(raw)
        write_runs(params, directory / "dvc.yaml")
        write_configs(params, directory / CONFIGS)
    except ConfigError:
        pass  # invalid params: the stage must say so itself


def run_stage(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "stages" / args[0]), *args[1:]], cwd=cwd,
                          capture_output=True, text=True)


@pytest.mark.parametrize("script", ["download.py", "preprocess.py", "report.py"])
def test_invalid_params_stop_every_stage_with_the_key_path(tmp_path: Path, real_params, script):
    real_params["variants"]["s2_cnn"]["blok"] = ["conv"]
    write_params(tmp_path, real_params)
    done = run_stage(tmp_path, script)
    assert done.returncode == 2
    assert "params.yaml is invalid" in done.stderr and "variants.s2_cnn.blok: unknown key" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_run_lists_the_known_ones(tmp_path: Path, real_params):
    write_params(tmp_path, real_params)
    done = run_stage(tmp_path, "train.py", "s2_cnnn", "--seeds", "0")
    assert done.returncode == 2 and "unknown variant 's2_cnnn'" in done.stderr and "s2_cnn," in done.stderr
    done = run_stage(tmp_path, "train.py", "s2_cnn", "--seeds", "0,1")
    assert done.returncode == 2 and "params.yaml trains s2_cnn under seeds 0,1,2" in done.stderr
    done = run_stage(tmp_path, "train.py", "s2_cnn")
    assert done.returncode == 2 and "usage: train.py VARIANT --seeds" in done.stderr


def test_a_stale_runs_file_stops_every_stage(tmp_path: Path, real_params):
    write_params(tmp_path, real_params)
    real_params["studies"]["s4_d2l"]["seeds"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(real_params))
    done = run_stage(tmp_path, "download.py")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert ("dvc.yaml: the runs are out of date with params.yaml (changed: s4_linear, s4_mlp_p2_p5, s4_mlp_p5_p2)"
            in done.stderr)
    assert "run `droplab runs`" in done.stderr


def test_unreachable_data_lists_every_source(tmp_path: Path, real_params):
    real_params["data"]["source_dir"] = str(tmp_path / "empty")
    write_params(tmp_path, real_params)
    done = subprocess.run(
        [sys.executable, "-c",
         "import droplab.data.datasets as d, dataclasses as dc;"
         "d.DATASETS['fashion_mnist'] = dc.replace(d.FASHION_MNIST, system_dir='/nonexistent',"
         " urls=('http://127.0.0.1:9/',));"
         f"import runpy; runpy.run_path({str(REPO / 'stages' / 'download.py')!r}, run_name='__main__')"],
        cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    for source in ("params data.source_dir", "system copy /nonexistent: file not found", "official URL"):
        assert source in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "raw" / "fashion_mnist").exists() or not any(
        (tmp_path / "data" / "raw" / "fashion_mnist").iterdir())


def test_outputs_honour_the_umask(tmp_path: Path):
    """mkstemp makes 0600 files; an output must get what open() would give."""
    old = os.umask(0o022)
    try:
        importlib.reload(atomic)
        atomic.write_text(tmp_path / "out.txt", "x\n")
        assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644
    finally:
        os.umask(old)
        importlib.reload(atomic)


def test_tiny_keeps_the_studies_of_the_kept_variants_and_records_what_it_leaves_out(tmp_path: Path, real_params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(real_params))
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    droplab_main(["tiny", "--keep", "s2_mlp,s2_cnn", "--params", str(tmp_path / "params.yaml"),
                  "--pipeline", str(tmp_path / "dvc.yaml")])
    params = load_params(tmp_path / "params.yaml")
    assert set(params.variants) == {"s2_mlp", "s2_cnn"} and set(params.studies) == {"s2_mlp", "s2_cnn"}
    assert "s4_mlp_p2_p5" in params.skipped_variants and "s2_mlp" not in params.skipped_variants
    check_runs(params, tmp_path / "dvc.yaml")


def test_tiny_keeps_every_comment_of_params_yaml_and_writes_what_shrink_gives(tmp_path: Path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    droplab_main(["tiny", "--params", str(tmp_path / "params.yaml"), "--pipeline", str(tmp_path / "dvc.yaml")])
    comments = [line.strip() for line in (REPO / "params.yaml").read_text().splitlines() if "#" in line]
    written = (tmp_path / "params.yaml").read_text()
    assert comments and all(comment.split("#", 1)[1] in written for comment in comments)
    assert read_yaml(tmp_path / "params.yaml") == shrink(read_yaml(REPO / "params.yaml"))


def test_the_cli_says_its_version_and_every_default(capsys):
    with pytest.raises(SystemExit):
        droplab_main(["--version"])
    assert capsys.readouterr().out.strip() == f"droplab {importlib.metadata.version('droplab')}"
    with pytest.raises(SystemExit):
        droplab_main(["review", "--help"])
    shown = capsys.readouterr().out
    assert "(default: main)" in shown and "(default: review)" in shown
    with pytest.raises(SystemExit):
        droplab_main(["tiny", "--help"])
    assert "EDITS params.yaml and dvc.yaml" in " ".join(capsys.readouterr().out.split())


def test_params_edited_while_validate_runs_stop_it_before_it_writes(tiny_params, tmp_path: Path, monkeypatch, capsys):
    """DVC records params.yaml as validate's dependency after the stage: outputs written from the file as it
    was before an edit would sit beside the edited file in dvc.lock. Nothing is written."""
    write_params(tmp_path, tiny_params)
    shutil.rmtree(tmp_path / CONFIGS)
    (tmp_path / "claims.yaml").write_bytes((REPO / "claims.yaml").read_bytes())

    def edit_params(*args) -> None:
        path = tmp_path / "params.yaml"
        path.write_text(path.read_text().replace("dropout: 0.5\n", "dropout: 0.9\n"))

    monkeypatch.setattr("droplab.results.claims.check_claim_variants", edit_params)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["validate.py"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "stages" / "validate.py"), run_name="__main__")
    assert exit_.value.code == 2
    assert capsys.readouterr().err == ("droplab validate: error: params.yaml changed while the validate stage ran: "
                                       "dropout is 0.9 now, 0.5 when it started; run dvc repro again\n")
    assert not (tmp_path / CONFIGS).exists() and not (tmp_path / "data/params.checked").exists()


@pytest.mark.parametrize("records_params", [True, False])
def test_params_edited_while_a_stage_runs_fail_a_stage_whose_params_dvc_records(
        records_params: bool, tiny_params, tmp_path: Path, monkeypatch, capsys):
    """DVC records params.yaml (profile, aggregate, report: the file; download, preprocess: keys of
    it) when a stage ends: outputs computed from the file before an edit must not be recorded beside
    the edited one. A train stage's params arrive through data/configs, checked when it starts."""
    from droplab.stage_runner import run_stage

    write_params(tmp_path, tiny_params)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["profile_model.py"])
    ran = []

    def edit_params(params) -> None:
        ran.append(params.dropout)
        path = tmp_path / "params.yaml"
        path.write_text(path.read_text().replace("dropout: 0.5\n", "dropout: 0.9\n"))

    if not records_params:
        run_stage("train", edit_params, records_params=False)
        assert ran == [0.5] and capsys.readouterr().err == ""
        return
    with pytest.raises(SystemExit) as exit_:
        run_stage("profile", edit_params)
    assert ran == [0.5] and exit_.value.code == 2
    assert capsys.readouterr().err == ("droplab profile: error: params.yaml changed while the profile stage "
                                       "ran: dropout is 0.9 now, 0.5 when it started; run dvc repro again\n")


def test_tiny_keep_empty_or_only_skipped_variants_leaves_both_files_untouched(tmp_path: Path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    before = {name: (tmp_path / name).read_bytes() for name in ("params.yaml", "dvc.yaml")}
    monkeypatch.chdir(tmp_path)
    for keep in ("", ",", "s3_resnet50_avg"):
        with pytest.raises(SystemExit) as exit_:
            droplab_main(["tiny", "--keep", keep])
        assert exit_.value.code == 2
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
