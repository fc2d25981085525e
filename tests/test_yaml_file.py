"""droplab reads YAML as DVC does (ruamel.yaml, YAML 1.2), with droplab's own messages."""

from pathlib import Path

import pytest
from dvc.utils.serialize import parse_yaml

from droplab.errors import DroplabError
from droplab.yaml_file import read_yaml, with_comments

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["params.yaml", "claims.yaml", "dvc.yaml"])
def test_the_repository_files_read_exactly_as_dvc_reads_them(name: str):
    text = (REPO / name).read_text()
    assert read_yaml(REPO / name) == parse_yaml(text, name)


def test_yaml_1_2_scalars_as_dvc_reads_them(tmp_path: Path):
    """`on`/`yes` are strings and 0777 is decimal in YAML 1.2: the values `dvc params diff` shows."""
    text = "a: 1e-3\nb: on\nc: yes\nd: 0777\ne: 1_000\nf: .inf\ng: ~\nh: true\n"
    (tmp_path / "p.yaml").write_text(text)
    read = read_yaml(tmp_path / "p.yaml")
    assert read == parse_yaml(text, "p.yaml")
    assert read["b"] == "on" and read["c"] == "yes" and read["a"] == 0.001 and type(read["a"]) is float


def test_a_repeated_key_names_the_key_and_both_lines(tmp_path: Path):
    (tmp_path / "p.yaml").write_text("x: 1\ndropout: 0.5\nnested:\n  dropout: 1\ndropout: 0.3\n")
    with pytest.raises(DroplabError, match=r"p.yaml: not valid YAML: key 'dropout' appears twice \(lines 2 and 5\); "
                                           "keep one"):
        read_yaml(tmp_path / "p.yaml")


def test_a_repeated_nested_key_is_refused_too(tmp_path: Path):
    (tmp_path / "p.yaml").write_text("a:\n  b: 1\n  c: 2\n  b: 3\n")
    with pytest.raises(DroplabError, match=r"key 'b' appears twice \(lines 2 and 4\)"):
        read_yaml(tmp_path / "p.yaml")


def test_the_round_trip_keeps_comments_and_drops_removed_keys():
    text = "# head\na: 1  # the a\nb:\n  c: 2  # the c\n  d: 3\ne: 4\n"
    assert with_comments(text, {"a": 5, "b": {"c": 2}, "f": 6}) == "# head\na: 5  # the a\nb:\n  c: 2  # the c\nf: 6\n"
