"""The test confusion file of a run (plots/train/<variant>/seed<k>/test_confusion.tsv), in one
torch-free place: training writes it, the report reads it back, and DVC's `confusion` template
draws it. One row per test image, so the template can count them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from droplab.errors import DroplabError


def confusion_rows(confusion: list[list[int]], classes: list[str]) -> str:
    """The test confusion matrix (true x predicted counts) as the per-image rows DVC's
    `confusion` template counts, sorted so that equal rows sit together and diff compactly."""
    lines = ["actual\tpredicted"]
    for actual, row in enumerate(confusion):
        for predicted, count in enumerate(row):
            lines += [f"{classes[actual]}\t{classes[predicted]}"] * int(count)
    return "\n".join(lines) + "\n"


def read_confusion(path: Path, classes: list[str]) -> np.ndarray:
    """A confusion rows file back as counts (true x predicted); a class it names that meta.json
    does not is an error naming the file."""
    rows = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    index = {name: position for position, name in enumerate(classes)}
    if list(rows.columns) != ["actual", "predicted"]:
        raise DroplabError(f"{path}: expected the columns actual, predicted; found {', '.join(rows.columns)}")
    unknown = sorted(set(rows["actual"]) - set(index) | set(rows["predicted"]) - set(index))
    if unknown:
        raise DroplabError(f"{path}: class {unknown[0]!r} is not one of meta.json's classes; rerun its train stage")
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, (rows["actual"].map(index).to_numpy(int), rows["predicted"].map(index).to_numpy(int)), 1)
    return counts
