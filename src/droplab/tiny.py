"""The tiny config: the real params.yaml shrunk until the whole pipeline runs in minutes.

Used by the tests (conftest shrinks the real config rather than mocking it) and by the pull
request workflow, which runs it on the base and on the head of a PR and compares the two.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

TINY_DATA = {"train_limit": 300, "val_size": 200, "test_limit": 500}
TINY_TRAIN = {"epochs": 1, "batch_size": 50}
TINY_SEEDS = 2  # the most seeds a study keeps: still more than one, so the statistics have a spread


def shrink(raw: dict, keep: Iterable[str] | None = None) -> dict:
    """A few hundred images, one epoch, at most two seeds; `keep` names the variants to keep
    (all by default), and studies lose the others (a study left empty goes)."""
    raw = copy.deepcopy(raw)
    if keep is not None:
        kept = set(keep)
        raw["variants"] = {name: spec for name, spec in raw["variants"].items() if name in kept}
        studies = {name: {**study, "variants": [v for v in study["variants"] if v in raw["variants"]]}
                   for name, study in raw["studies"].items()}
        raw["studies"] = {name: study for name, study in studies.items() if study["variants"]}
    for study in raw["studies"].values():
        study["seeds"] = min(study.get("seeds", 1), TINY_SEEDS)
    raw["data"].update(TINY_DATA)
    raw["train"].update(TINY_TRAIN)
    for spec in raw["variants"].values():
        overrides = spec.get("train", {})
        overrides.update({key: value for key, value in TINY_TRAIN.items() if key in overrides})
    return raw
