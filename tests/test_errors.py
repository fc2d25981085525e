"""One way to report an error: the CLI and every stage print the same one line and exit 2."""

import errno
import os
import signal

import pytest

from droplab.atomic import atomic_open
from droplab.errors import INTERRUPTED, TERMINATED, UNWRITTEN, DroplabError, reported


def _report(capsys, command: str, error: BaseException, stage: bool) -> str:
    with pytest.raises(SystemExit) as exited, reported(command, stage=stage):
        raise error
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("stage", [False, True])
def test_a_droplab_error_is_one_line_naming_the_command(capsys, stage: bool):
    assert _report(capsys, "tiny", DroplabError("params.yaml: bad"), stage) == "droplab tiny: error: params.yaml: bad\n"


def test_a_stage_reports_ctrl_c_and_what_it_kept(capsys):
    assert _report(capsys, "train", KeyboardInterrupt(), True) == f"droplab train: error: {INTERRUPTED}\n"


def test_a_stage_names_the_file_it_could_not_write(capsys):
    error = OSError(errno.ENOSPC, "No space left on device", "metrics/train/x.json")
    assert _report(capsys, "aggregate", error, True) == (
        f"droplab aggregate: error: metrics/train/x.json: No space left on device. {UNWRITTEN}\n")


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError("disk"), ValueError("a bug")])
def test_outside_a_stage_only_droplab_errors_are_shortened(error: BaseException):
    with pytest.raises(type(error)), reported("sweep"):
        raise error


@pytest.mark.parametrize("stage", [False, True])
def test_sigterm_is_reported_like_ctrl_c_and_cleans_up(capsys, tmp_path, stage: bool):
    """A real SIGTERM inside `reported` raises where the process is, so an atomic write removes its
    temporary file, and ends in one line (in a stage and a command alike); the handler is restored."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exited, reported("train", stage=stage), atomic_open(tmp_path / "out.json") as out:
        out.write("half")
        os.kill(os.getpid(), signal.SIGTERM)
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"droplab train: error: {TERMINATED}\n"
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before
