"""One way to report an error: the CLI and every stage print the same one line and exit 2."""

import errno

import pytest

from droplab.errors import INTERRUPTED, UNWRITTEN, DroplabError, reported


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
