"""What dvc.yaml spells out from params.yaml: the train stage's `foreach` (one item per variant,
with its home study, its rate key and its seeds) and the top-level `plots:` (each study's
curves and test intervals, and the claims), both written by `droplab runs` between marker comments.

DVC cannot compute per-study seed counts or which study a variant takes its scale settings
from, and its `matrix` cannot carry a variant's rate key, so `droplab runs` writes the list
into dvc.yaml, between two marker comments. The seeds are in the command line, so adding a
seed reruns that variant's stage. It lives there rather than in a `vars` file because DVC would show every value of a
vars file as a parameter column in `dvc exp show`. Every stage checks that both still match
params.yaml, so a stale list stops the pipeline instead of training (or plotting) the old set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from droplab.atomic import atomic_open, json_text, write_text
from droplab.code_deps import write_code_deps
from droplab.config import AnalysisConfig, Params, TrainConfig, VariantConfig, VariantSpec
from droplab.errors import DroplabError
from droplab.run_files import CURVES

PIPELINE = Path("dvc.yaml")
BEGIN = "    # runs: generated from params.yaml by `droplab runs` (make runs); do not edit by hand\n"
END = "    # end of runs\n"
BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
PLOTS_BEGIN = "  # plots: generated from params.yaml's studies by `droplab runs` (make runs); do not edit by hand\n"
PLOTS_END = "  # end of plots\n"
PLOTS_BLOCK = re.compile(re.escape(PLOTS_BEGIN) + r".*?" + re.escape(PLOTS_END), re.S)
CONFIGS = Path("data/configs")  # <variant>.json: each train stage's one dependency on params.yaml
PLOT_DATA = Path("plots")  # the aggregate stage's git-tracked plot data (results.plot_data)


def runs_mapping(params: Params) -> dict[str, dict]:
    """variant -> {study: its home study, p: the params key its rates come from, seeds: "0,1,2"} (a
    string: DVC puts it in the command). A swept variant's rates are its study's sweep, not `dropout`."""
    return {name: {"study": params.home_study(name), "p": params.rate_key(name),
                   "seeds": ",".join(map(str, params.seeds_of(name)))}
            for name in params.variants if name in params.trained_variants()}


def _config_record(config: VariantConfig) -> dict:
    return {"spec": config.spec.model_dump(mode="json"), "rates": config.rates, "rate": config.rate,
            "rate_key": config.rate_key, "train": config.train.model_dump(mode="json"), "sizes": config.sizes,
            "split_seed": config.split_seed, "lr_keys": config.lr_keys}


def variant_config(params: Params, variant: str) -> str:
    """Everything the variant's train stage reads from params.yaml, resolved (its spec with its
    study's scale applied, its rates or sweep rates, its train settings, its subsets, the BN
    analysis settings). The stage depends on this file instead of declaring params, so DVC reruns
    it exactly when one of these values changes, and `dvc exp show` is not flooded with a column
    per leaf of params.yaml."""
    rates = params.sweep_rates(variant) or [None]
    return json_text({"variant": variant, "analysis": params.analysis.model_dump(mode="json"),
                      "runs": [_config_record(params.resolve(variant, rate)) for rate in rates]})


def write_configs(params: Params, folder: Path = CONFIGS) -> None:
    """data/configs/<variant>.json for every trained variant, rewritten only where it changed (a
    file with the same bytes keeps its stage cached); the files of variants no longer trained go."""
    wanted = {f"{variant}.json": variant_config(params, variant) for variant in params.trained_variants()}
    for stale in folder.glob("*.json") if folder.is_dir() else ():
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        path = folder / name
        if not path.is_file() or path.read_text() != text:
            write_text(path, text)


@dataclass(frozen=True)
class RecordedConfig:
    """data/configs/<variant>.json read back: what its train stage trains on, as DVC recorded it."""

    analysis: AnalysisConfig
    runs: list[VariantConfig]  # one per sweep rate (one if the variant does not sweep)


def first_difference(recorded: Any, current: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """(key path, recorded value, current value) where two JSON values first differ; None if equal."""
    if isinstance(recorded, dict) and isinstance(current, dict) and recorded.keys() == current.keys():
        pairs: list[tuple[Any, Any, Any]] = [(name, recorded[name], current[name]) for name in recorded]
    elif isinstance(recorded, list) and isinstance(current, list) and len(recorded) == len(current):
        pairs = list(zip(range(len(recorded)), recorded, current, strict=True))
    else:
        return None if recorded == current else (key or "the whole config", recorded, current)
    return next((found for name, was, now in pairs
                 if (found := first_difference(was, now, f"{key}.{name}" if key else str(name)))), None)


def read_variant_config(params: Params, variant: str, folder: Path = CONFIGS) -> RecordedConfig:
    """The config the validate stage recorded for `variant`'s train stage (its DVC dependency), refused
    unless params.yaml still resolves to exactly it: a stage trains on the params DVC records for it."""
    path = folder / f"{variant}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DroplabError(f"{path}: cannot read the config the validate stage writes "
                           f"({getattr(exc, 'strerror', None) or exc}); run dvc repro") from None
    current = variant_config(params, variant)
    if text != current:
        try:
            recorded = json.loads(text)
        except json.JSONDecodeError:
            recorded = None
        key, was, now = first_difference(recorded, json.loads(current)) or ("the whole config", None, None)
        raise DroplabError(f"params.yaml changed since the validate stage ran: {key} is {json.dumps(now)} in it, "
                           f"{json.dumps(was)} in {path}; run dvc repro again")
    record = json.loads(text)
    return RecordedConfig(AnalysisConfig.model_validate_json(json.dumps(record["analysis"])),
                          [_parsed(variant, run) for run in record["runs"]])


def _parsed(variant: str, run: dict) -> VariantConfig:
    """One run's record as the VariantConfig `Params.resolve` gave (each part validated from its JSON)."""
    return VariantConfig(name=variant, spec=_SPEC.validate_json(json.dumps(run["spec"])), rates=run["rates"],
                         train=TrainConfig.model_validate_json(json.dumps(run["train"])), sizes=run["sizes"],
                         split_seed=run["split_seed"], lr_keys=run["lr_keys"], rate=run["rate"],
                         rate_key=run["rate_key"])


_SPEC: TypeAdapter = TypeAdapter(VariantSpec)


def plots_list(params: Params) -> list[dict]:
    """dvc.yaml's top-level plots, all drawn from the git-tracked files of the aggregate stage
    (results.plot_data), so that a clone without the DVC cache can show and diff them: per study,
    its curves (seed mean and 95% band, train and validation) and its test top-1 with intervals,
    titled by the study's title; then every claim's paired difference."""
    plots: list[dict] = []
    for name, study in params.studies.items():
        for metric, label in CURVES.items():
            plots.append({f"{PLOT_DATA / 'curves' / name}_{metric}.tsv": {
                "title": f"{study.title}: train (solid) and validation (dashed) {label}, mean over seeds, 95% band",
                "template": "droplab_curves", "x": "epoch", "y": "mean", "x_label": "epoch", "y_label": label}})
        plots.append({f"{PLOT_DATA / 'test' / name}.tsv": {
            "title": f"{study.title}: test top-1 accuracy, mean over seeds with its 95% interval",
            "template": "droplab_intervals", "x": "test_acc1", "y": "variant", "x_label": "test top-1 accuracy",
            "y_label": "variant"}})
    plots.append({str(PLOT_DATA / "claims.tsv"): {
        "title": "The studies' claims: paired difference with its interval, coloured by verdict",
        "template": "droplab_claims", "x": "difference", "y": "claim",
        "x_label": "paired difference in the claim's metric (first named minus second)", "y_label": "claim"}})
    return plots


class _PlotsDumper(yaml.SafeDumper):
    """Block mappings, except that a plot's own settings (scalars only, no file names as keys)
    and each list of column names sit on one line."""

    def represent_list(self, value: list) -> yaml.Node:
        flow = all(isinstance(item, str) for item in value)
        return self.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)

    def represent_dict(self, value: dict) -> yaml.Node:
        flow = all(isinstance(item, (str, int, float)) for item in value.values()) and not any(
            "/" in key for key in value)
        return self.represent_mapping("tag:yaml.org,2002:map", value, flow_style=flow)

    def ignore_aliases(self, data) -> bool:
        return True


_PlotsDumper.add_representer(list, _PlotsDumper.represent_list)
_PlotsDumper.add_representer(dict, _PlotsDumper.represent_dict)


def _by_id(plots: object) -> dict | None:
    """A plots list as {plot id: its definition}: the order of the studies is not staleness."""
    if not isinstance(plots, list) or not all(isinstance(entry, dict) for entry in plots):
        return None
    return {name: spec for entry in plots for name, spec in entry.items()}


def _plots_block(params: Params) -> str:
    listed = yaml.dump(plots_list(params), Dumper=_PlotsDumper, sort_keys=False, default_flow_style=False, width=1000)
    return PLOTS_BEGIN + "".join(f"  {line}\n" for line in listed.splitlines()) + PLOTS_END


def yaml_scalar(text: str) -> str:
    """`text` as a YAML flow scalar that reads back as the same string, under YAML 1.1 (PyYAML) and
    1.2 (DVC's ruamel): bare where it already does, double-quoted where YAML would read a null, a
    boolean or a number (`null`, `yes`, `1e3`, `0x10`) or where a character would end it."""
    from ruamel.yaml import YAML

    bare = bool(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", text))
    if bare and yaml.safe_load(text) == text and YAML(typ="safe", pure=True).load(text) == text:
        return text
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def _block(params: Params) -> str:
    lines = [f"      {yaml_scalar(name)}: {{study: {yaml_scalar(str(item['study']))}, p: {yaml_scalar(item['p'])}, "
             f"seeds: \"{item['seeds']}\"}}\n" for name, item in runs_mapping(params).items()]
    return BEGIN + "    foreach:\n" + "".join(lines) + END


def runs_block_of(path: Path) -> str:
    """The text of `path`, checked to hold a runs block and a plots block."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DroplabError(f"{path}: cannot read the pipeline ({exc.strerror or exc})") from None
    for block, begin, end, where in ((BLOCK, BEGIN, END, "in the train stage"),
                                     (PLOTS_BLOCK, PLOTS_BEGIN, PLOTS_END, "under the top-level plots:")):
        if not block.search(text):
            raise DroplabError(f"{path}: no generated block (the lines from {begin.strip()!r} to {end.strip()!r}) "
                               f"{where}")
    try:  # a pipeline DVC cannot parse is refused here, before any block of it is rewritten
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise DroplabError(f"{path}: not valid YAML{where} ({getattr(exc, 'problem', None) or 'unparseable'}); "
                           "fix it (or `git checkout` it) and rerun") from None
    return text


def write_runs(params: Params, path: Path = PIPELINE) -> int:
    """Rewrite the runs, plots and code deps blocks of `path`, and drop from its lock file the stages it no
    longer has; return the number of runs."""
    text = BLOCK.sub(lambda _: _block(params), runs_block_of(path))
    write_text(path, write_code_deps(PLOTS_BLOCK.sub(lambda _: _plots_block(params), text)))
    prune_lock(path.with_suffix(".lock"), stage_names(params, yaml.safe_load(text)))
    return len(params.runs())


def stage_names(params: Params, pipeline: dict) -> set[str]:
    """The stages DVC resolves from the pipeline: each plain stage, and train@<variant> per run item."""
    plain = {name for name in pipeline["stages"] if name != "train"}
    return plain | {f"train@{name}" for name in runs_mapping(params)}


def prune_lock(lock: Path, stages: set[str]) -> list[str]:
    """Remove the entries of stages the pipeline no longer has from `lock` (DVC keeps them), and
    return their names. DVC rereads and rewrites the whole lock file after every stage, so stale
    entries cost every run time as well as confusion."""
    if not lock.exists():
        return []
    from ruamel.yaml import YAML  # DVC's own round-trip parser: the rest of the file keeps its bytes

    round_trip = YAML()
    with lock.open() as handle:
        content = round_trip.load(handle)
    recorded = content.get("stages", {}) if isinstance(content, dict) else {}
    stale = [name for name in recorded if name not in stages]
    if stale:
        for name in stale:
            del recorded[name]
        with atomic_open(lock) as handle:
            round_trip.dump(content, handle)
    return stale


def check_runs(params: Params, path: Path = PIPELINE) -> None:
    """Refuse to run when dvc.yaml's runs no longer spell out params.yaml's."""
    expected = runs_mapping(params)
    try:
        pipeline = yaml.safe_load(path.read_text())
        found = pipeline["stages"]["train"]["foreach"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise DroplabError(f"{path}: cannot read the train stage's runs ({exc!r})") from None
    if found == expected and _by_id(pipeline.get("plots")) != _by_id(plots_list(params)):
        raise DroplabError(f"{path}: the top-level plots are out of date with params.yaml's studies; run "
                           "`droplab runs` (or `make runs`) and commit dvc.yaml")
    if found != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        changed = sorted(name for name in set(expected) & set(found) if expected[name] != found[name])
        details = "; ".join(f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
                            for label, names in (("missing", missing), ("not in params.yaml", extra),
                                                 ("changed", changed)) if names)
        raise DroplabError(f"{path}: the runs are out of date with params.yaml ({details}); run `droplab runs` "
                           "(or `make runs`), then `dvc repro`, and commit dvc.yaml")
