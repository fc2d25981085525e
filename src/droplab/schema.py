"""The pydantic base of droplab's file schemas (params.yaml, claims.yaml, meta.json, the model
specs) and one way to turn a validation error into a line for the person who wrote the file."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from types import MappingProxyType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict

Tags = Mapping[str, type[BaseModel]]
EMPTY: Tags = MappingProxyType({})


class Strict(BaseModel):
    # strict: "3" is not silently an int; ints are still accepted where a float is expected.
    # allow_inf_nan: every float of every file droplab reads is finite (a std of Infinity would
    # train on all-zero inputs and pass).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# The one name rule: every name that becomes a path, a DVC stage or key, or a YAML key passes it.
# fullmatch, never match with '$' (which also matches before a final newline).
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_plain_name(name: str) -> str:
    """`name` if it is plain: letters, digits, '_' and '-', so it can never leave its folder."""
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise ValueError(f"name {name!r} may use only letters, digits, '_' and '-', starting with a letter or digit "
                         "(it becomes a file name, and DVC reads '.' as nesting)")
    return name


# The same rule for a file name droplab writes under its own folder (a pinned raw file): '.' allowed
# inside, never first, so neither '..' nor a hidden file.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_file_name(name: str) -> str:
    """`name` if it is a plain file name that stays in its folder."""
    if not FILE_NAME.fullmatch(name):
        raise ValueError(f"file name {name!r} may use only letters, digits, '.', '_' and '-', starting with a letter "
                         "or digit (no folders)")
    return name


def check_unique_names(names: list[str]) -> list[str]:
    """`names` if none repeats: a repeated class name would merge two classes in every per-class table."""
    return distinct(names, "name {!r} appears more than once")


UniqueNames = Annotated[list[str], AfterValidator(check_unique_names)]


def first_repeated(items: list) -> Any:
    """The smallest item that appears more than once, or None."""
    repeated = sorted({item for item in items if items.count(item) > 1})
    return repeated[0] if repeated else None


def distinct(items: list, problem: str) -> list:
    """`items` if none repeats, else a ValueError: `problem` formatted with the smallest repeated one."""
    if (twice := first_repeated(items)) is not None:
        raise ValueError(problem.format(twice))
    return items


class KeyProblem(ValueError):
    """A validator's finding about a key below the model it runs on (a study's `sweep.select`):
    `describe` appends `key` to the error's path, so the check can live on the model that owns
    the key's context and still name the key itself."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def describe(error: Mapping[str, Any], hidden: Collection[str] = ()) -> str:
    """One pydantic error as 'key.path: what is wrong (got value)'. Parts of the path in
    `hidden` (a tagged union's tags, which the author never wrote as keys) are left out."""
    loc = [str(part) for part in error["loc"] if part not in hidden]
    if isinstance(found := error.get("ctx", {}).get("error"), KeyProblem):
        loc += found.key.split(".")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif not isinstance(error.get("input"), (dict, list)):
        message += f" (got {error.get('input')!r})"
    return f"{'.'.join(loc)}: {message}" if loc else message


def allowed_keys(error: Mapping[str, Any], root: type[BaseModel], tags: Tags = EMPTY) -> str:
    """For an unknown key, '; allowed: ...' with the keys allowed where it stands (walking `root`'s
    fields along the error's path; `tags` maps a tagged union's tags to their models)."""
    model: Any = root
    for part in error["loc"][:-1]:
        if isinstance(model, type) and issubclass(model, BaseModel):
            if part in model.model_fields:
                model = model.model_fields[part].annotation
            continue
        args = getattr(model, "__args__", ())
        if part in tags:
            model = tags[part]
        elif args:
            model = args[-1]
    if isinstance(model, type) and issubclass(model, BaseModel):
        return "; allowed: " + ", ".join(model.model_fields)
    return ""


def _union_label_at(loc: tuple, root: type[BaseModel], tags: Tags) -> int | None:
    """Where `loc` (an error's path under `root`) holds the label pydantic gives a member of a plain
    union ('bool', "literal['auto']"): a part the author never wrote. None if it holds none."""
    model: Any = root
    for index, part in enumerate(loc):
        while get_origin(model) is Annotated:
            model = get_args(model)[0]
        if isinstance(model, type) and issubclass(model, BaseModel):
            if part not in model.model_fields:
                return None
            model = model.model_fields[part].annotation
            continue
        members = [arg for arg in get_args(model) if arg is not type(None)]
        if get_origin(model) in (Union, UnionType) and part in tags:
            model = tags[part]
        elif get_origin(model) in (Union, UnionType) and len(members) > 1:
            return index
        elif members:
            model = members[-1]  # a list's items, a dict's values, an optional's type
        else:
            return None
    return None


MOST_PROBLEMS = 12  # listed of one validation; the rest are counted


def problem_lines(errors: list[Mapping[str, Any]], root: type[BaseModel], tags: Tags = EMPTY) -> list[str]:
    """Every error of one validation, described, an unknown key with the keys allowed there; a value no
    member of a union accepts is one line at its key, not one per member under the member's label."""
    lines: list[str | tuple] = []  # a line, or the key of a union's messages (joined below)
    unions: dict[tuple, list[str]] = {}
    for error in errors:
        label = _union_label_at(tuple(error["loc"]), root, tags)
        if label is None:
            lines.append(describe(error, tags) + (allowed_keys(error, root, tags)
                                                  if error["type"] == "extra_forbidden" else ""))
            continue
        at = (*error["loc"][:label], repr(error.get("input")))
        if at not in unions:
            unions[at] = []
            lines.append(at)
        unions[at].append(error["msg"].removeprefix("Input should be "))
    described = [line if isinstance(line, str) else
                 describe({"loc": line[:-1], "msg": "Input should be " + " or ".join(unions[line]), "type": "union",
                           "input": []}, tags) + f" (got {line[-1]})" for line in lines]
    if len(described) > MOST_PROBLEMS:  # a file gone wrong everywhere (or an alias bomb) stays readable
        return [*described[:MOST_PROBLEMS], f"... and {len(described) - MOST_PROBLEMS} more problems"]
    return described
