"""Read params.yaml and claims.yaml the way DVC reads them, or say exactly why not.

droplab parses with ruamel.yaml, DVC's own parser: YAML 1.2, so `lr: 1e-3` is the number users
mean (YAML 1.1, PyYAML's default, reads a string), and a repeated key is an error rather than a
silently kept last value. Reading what `dvc exp run -S` and `dvc params diff` read, droplab cannot
disagree with DVC about a value. Rewrites go through ruamel's round trip, which keeps comments.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError, tokens
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
from ruamel.yaml.nodes import MappingNode, Node

from droplab.atomic import regular_file
from droplab.errors import DroplabError


class _Constructor(SafeConstructor):
    """ruamel's safe constructor; a repeated key is reported with both of its lines and the fix."""

    def check_mapping_key(self, node: MappingNode, key_node: Node, mapping: Any, key: Any, value: Any) -> bool:
        if key not in mapping:
            return True
        first = next(other.start_mark.line + 1 for other, _ in node.value
                     if self.construct_object(other, deep=True) == key)
        raise ConstructorError(None, None, f"key {key!r} appears twice (lines {first} and "
                               f"{key_node.start_mark.line + 1}); keep one", key_node.start_mark)


# Nesting levels a params or claims file may have (they use fewer than 10): ruamel's C parser, DVC's,
# recurses once per level and crashes the process (SIGSEGV) near 100,000, before any error.
MAX_DEPTH = 100
_OPENS = (tokens.BlockMappingStartToken, tokens.BlockSequenceStartToken, tokens.FlowMappingStartToken,
          tokens.FlowSequenceStartToken)
_CLOSES = (tokens.BlockEndToken, tokens.FlowMappingEndToken, tokens.FlowSequenceEndToken)


def _check_depth(text: str, path: Path, error: type[DroplabError]) -> None:
    """Refuse nesting deeper than MAX_DEPTH before parsing: the scanner keeps no stack (a few ms
    for params.yaml), the composer after it recurses."""
    depth = 0
    try:
        for token in YAML(typ="safe").scan(text):
            depth += isinstance(token, _OPENS) - isinstance(token, _CLOSES)
            if depth > MAX_DEPTH:
                raise error(f"{path}: nested more than {MAX_DEPTH} levels deep at line {token.start_mark.line + 1}; "
                            "no droplab setting needs that")
    except YAMLError:
        return  # not valid YAML: the parser says where


def _safe() -> YAML:
    """A loader of plain Python values (dict, list, str, int, float, bool, None, dates)."""
    loader = YAML(typ="safe")
    loader.Constructor = _Constructor
    return loader


def read_yaml(path: str | Path, error: type[DroplabError] = DroplabError) -> Any:
    """The parsed file; a missing file, a non-UTF-8 byte or bad YAML raise `error` naming the file."""
    path = Path(path)
    try:
        data = regular_file(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: file not found (run from the repository root, or pass the right path)") from None
    except DroplabError as exc:  # a directory, FIFO or device: refused before it is opened
        raise error(str(exc)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"{path}: byte 0x{data[exc.start]:02x} at line {line} is not UTF-8; "
                    "save the file as UTF-8") from None
    _check_depth(text, path, error)
    try:
        return _safe().load(text)
    except YAMLError as exc:
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
    """The YAML `text` rewritten to hold `new`, keeping its comments and key order where keys stay."""
    round_trip = YAML()
    round_trip.width = 110
    out = StringIO()
    round_trip.dump(_merge(round_trip.load(text), new), out)
    return out.getvalue()
