"""Datasets pinned in params.yaml (`extra_datasets`: a mirror, a private copy) beside the built-in
ones, with the URL policy: https, or plain http only on this machine's loopback."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from droplab.data.datasets import DATASETS, FORMAT_ROLES, DatasetSpec, Format, RawFile
from droplab.schema import KeyProblem, Strict, UniqueNames, check_file_name

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RawFileDecl(Strict):
    name: Annotated[str, AfterValidator(check_file_name)] = Field(description="a file name, no folders")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(None, gt=0)


class DatasetDecl(Strict):
    """A dataset in one of droplab's formats, pinned in params.yaml: a mirror, a private copy."""

    format: Format
    files: dict[str, RawFileDecl]
    urls: list[str] = []  # base URLs ending in '/'
    classes: UniqueNames = []  # required for idx; the other formats name their classes

    @field_validator("urls")
    @classmethod
    def _secure_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            local = parts.scheme == "http" and parts.hostname in LOOPBACK
            if not (parts.scheme == "https" or local) or not url.endswith("/"):
                raise ValueError(f"url {url!r}: expected an https:// base URL ending in '/' "
                                 "(plain http only on this machine's loopback)")
        return urls

    @model_validator(mode="after")
    def _roles(self) -> DatasetDecl:
        roles = FORMAT_ROLES[self.format]
        if sorted(self.files) != sorted(roles):
            raise ValueError(f"format {self.format} needs files for exactly: {', '.join(roles)}")
        if self.format == "idx" and not self.classes:
            raise ValueError("format idx needs `classes` (the IDX files hold only label numbers)")
        return self

    def spec(self, name: str) -> DatasetSpec:
        files = {role: RawFile(f.name, f.sha256, f.size) for role, f in self.files.items()}
        return DatasetSpec(name, self.format, files, tuple(self.urls), classes=tuple(self.classes))


def check_dataset(key: str, name: str, extra: Collection[str]) -> None:
    """`name`, which `key` gives, must be a built-in dataset or one of the `extra` ones."""
    if name not in DATASETS and name not in extra:
        raise ValueError(f"{key}: unknown dataset {name!r}; allowed: {', '.join([*DATASETS, *extra])}")


def check_no_shadowing(extra: Collection[str]) -> None:
    """An extra dataset (`extra_datasets.<name>`) may not take a built-in one's name."""
    shadowing = sorted(set(extra) & set(DATASETS))
    if shadowing:
        raise KeyProblem(shadowing[0], "a built-in dataset has this name; choose another")
