"""Read params.yaml and claims.yaml the way their authors mean them, or say exactly why not.

PyYAML follows YAML 1.1, where `1e-3` is a string and a repeated key silently keeps the last
value. Users write `lr: 1e-3` meaning a number, and DVC refuses a file with a repeated key, so
droplab reads floats the YAML 1.2 way and refuses duplicates, naming the key and its line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from droplab.errors import DroplabError

# YAML 1.2 core schema floats: 1e-3, 1.5E+2, .5, -2.0 (YAML 1.1 needs a dot and a signed exponent).
FLOAT_1_2 = re.compile(r"""^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
                            |[-+]?[0-9]+[eE][-+]?[0-9]+
                            |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X)


class Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (lines {seen[key]} and {key_node.start_mark.line + 1}); "
                    "keep one", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


Loader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                  for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
Loader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_1_2, list("-+0123456789."))


def read_yaml(path: str | Path, error: type[DroplabError] = DroplabError) -> Any:
    """The parsed file; a missing file, a non-UTF-8 byte or bad YAML raise `error` naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: file not found (run from the repository root, or pass the right path)") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a YAML file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"{path}: byte 0x{data[exc.start]:02x} at line {line} is not UTF-8; "
                    "save the file as UTF-8") from None
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None


def _merge(node: Any, new: Any) -> Any:
    """`new` written into the round-trip `node` key by key, so that the comments of every key
    that stays are kept; values that are not mappings are replaced whole."""
    if not (isinstance(node, dict) and isinstance(new, dict)):
        return new
    for key in [key for key in node if key not in new]:
        del node[key]
    for key, value in new.items():
        node[key] = _merge(node[key], value) if key in node else value
    return node


def with_comments(text: str, new: dict) -> str:
    """The YAML `text` rewritten to hold `new`, keeping its comments and key order where keys stay
    (ruamel.yaml's round trip: PyYAML drops every comment)."""
    from io import StringIO

    from ruamel.yaml import YAML

    round_trip = YAML()
    round_trip.width = 110
    out = StringIO()
    round_trip.dump(_merge(round_trip.load(text), new), out)
    return out.getvalue()
