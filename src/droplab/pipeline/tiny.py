"""The tiny config: the real params.yaml shrunk until the whole pipeline runs in minutes.

Used by the tests (conftest shrinks the real config rather than mocking it) and by the pull
request workflow, which runs it on the base and on the head of a PR and compares the two.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path

from droplab.config import ConfigError, Params, parse_params, read_params

TINY_DATA = {"train_limit": 300, "val_size": 200, "test_limit": 500}
TINY_TRAIN = {"epochs": 1, "batch_size": 50}
TINY_SEEDS = 2  # the most seeds a study keeps: still more than one, so the statistics have a spread


def shrink(raw: dict, keep: Iterable[str] | None = None, option: str = "--keep") -> dict:
    """A few hundred images, one epoch (at every study's scale), at most two seeds; `keep` names the variants to keep
    (all by default), and studies lose the others (a study left empty goes). The variants left
    out are listed under `skipped_variants`, so a claim about one reads "not run", not "typo".
    `option` is the command-line option that gave `keep`, for the messages."""
    raw = copy.deepcopy(raw)
    raw.setdefault("studies", {})
    if keep is not None:
        kept = set(keep)
        if not kept or "" in kept:
            raise ConfigError(f"{option}: an empty variant name; give the variants to keep, separated by commas")
        unknown = sorted(kept - set(raw["variants"]))
        if unknown:
            raise ConfigError(f"{option}: {', '.join(map(repr, unknown))} not in params.yaml variants; "
                              f"known: {', '.join(raw['variants'])}")
        skipped = [name for name in raw["variants"] if name not in kept]
        raw["skipped_variants"] = sorted({*raw.get("skipped_variants", []), *skipped})
        raw["variants"] = {name: spec for name, spec in raw["variants"].items() if name in kept}
        studies = {name: _kept(study, set(raw["variants"])) for name, study in raw["studies"].items()}
        raw["studies"] = {name: study for name, study in studies.items() if study["variants"]}
    raw["data"].update(TINY_DATA)
    raw["train"].update(TINY_TRAIN)
    for study in raw["studies"].values():
        study["seeds"] = min(study.get("seeds", 1), TINY_SEEDS)
        for scale in ("cpu", "paper"):
            study.get(scale, {}).get("train", {}).update(TINY_TRAIN)
    for spec in raw["variants"].values():
        overrides = spec.get("train", {})
        overrides.update({key: value for key, value in TINY_TRAIN.items() if key in overrides})
    return raw


def _kept(study: dict, kept: set[str]) -> dict:
    """A study with only the kept variants, in its list, its twins and its scales' skip lists."""
    study = {**study, "variants": [v for v in study["variants"] if v in kept]}
    study["twins"] = {v: twin for v, twin in study.get("twins", {}).items() if v in kept and twin in kept}
    for scale in ("cpu", "paper"):
        if scale in study:
            study[scale] = {**study[scale], "skip": [v for v in study[scale].get("skip", []) if v in kept]}
    return study


def checked_params(path: Path) -> tuple[dict, Params]:
    """The params file at `path` as written and as validated: one clear error naming the file, before
    `shrink` reads a section that may be missing."""
    raw = read_params(path)
    return raw, parse_params(raw, str(path))


def shrink_checked(raw: dict, path: Path, keep: Sequence[str] | None = None, option: str = "--keep",
                   allow_skipped: bool = False) -> tuple[dict, Params]:
    """`shrink` of a checked params file (`checked_params`), checked again, so that every problem is one
    clear error naming the file or `option` before anything is written. A variant `keep` names must
    train at the file's scale (one its home study skips would silently run nothing), unless
    `allow_skipped` (a study's own list, whose skipped variants the report explains)."""
    tiny = shrink(raw, keep, option)
    params = parse_params(tiny, f"{path} shrunk with {option} {','.join(keep)}" if keep is not None else str(path))
    skipped = [] if allow_skipped else [name for name in keep or () if params.skipped_at_scale(name)]
    if skipped:
        raise ConfigError(f"{option}: {', '.join(map(repr, skipped))} not trained at scale {params.scale} (in its "
                          f"home study's {params.scale}.skip, with the reason); leave it out")
    return tiny, params
