"""The generated blocks of dvc.yaml: the runs (one train stage per variant) and the plots (per study),
and the check that keeps them current."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from droplab.config import ConfigError, parse_params
from droplab.dvc_yaml import (
    BEGIN,
    BLOCK,
    END,
    PLOTS_BEGIN,
    PLOTS_BLOCK,
    PLOTS_END,
    check_runs,
    first_difference,
    read_variant_config,
    runs_mapping,
    write_configs,
    write_runs,
    yaml_scalar,
)
from droplab.errors import DroplabError

from conftest import REPO


def test_each_variant_trains_under_the_most_seeds_any_of_its_studies_asks_for(real_params):
    real_params["seeds"] = [7, 3, 11]
    for study in real_params["studies"].values():
        study["seeds"] = min(study.get("seeds", 1), 3)
    real_params["studies"]["s2_cnn"]["seeds"] = 1
    real_params["studies"]["extra"] = {"title": "t", "variants": ["s2_cnn"], "seeds": 2}
    params = parse_params(real_params)
    runs = params.runs()
    assert [name for name in runs if name.startswith("s4_mlp_p2_p5-")] == [
        "s4_mlp_p2_p5-seed7", "s4_mlp_p2_p5-seed3", "s4_mlp_p2_p5-seed11"]
    assert [name for name in runs if name.startswith("s2_cnn-")] == ["s2_cnn-seed7", "s2_cnn-seed3"]
    assert runs["s4_mlp_p2_p5-seed3"].rate_key == "fixed_p.s4_p1_low" and runs["s2_cnn-seed7"].rate_key == "dropout"
    assert runs["s4_mlp_p2_p5-seed3"].path(Path("metrics/train"), ".json") == Path(
        "metrics/train/s4_mlp_p2_p5/seed3.json")
    # one train stage per variant, with its home study (the first listing it) and its seeds in the command
    items = runs_mapping(params)
    assert items["s2_cnn"] == {"study": "s2_cnn", "p": "dropout", "seeds": "7,3"}
    assert items["resnet18_avg"]["study"] == "s1_placement"


def test_adding_a_seed_changes_only_that_studys_items(real_params):
    before = runs_mapping(parse_params(real_params))
    real_params["studies"]["s2_cnn"]["seeds"] = 4
    after = runs_mapping(parse_params(real_params))
    changed = {name for name in after if after[name] != before[name]}
    assert changed == set(real_params["studies"]["s2_cnn"]["variants"])
    assert after["s2_cnn"]["seeds"] == "0,1,2,3"


def test_variants_a_scale_skips_get_no_train_stage(real_params):
    params = parse_params(real_params)
    skipped = real_params["studies"]["s3_heads"]["cpu"]["skip"]
    assert skipped and not set(skipped) & set(runs_mapping(params))
    real_params["scale"] = "paper"
    assert set(skipped) <= set(runs_mapping(parse_params(real_params)))


@pytest.mark.parametrize("change, expected", [
    ({"seeds": []}, "seeds: List should have at least 1 item"),
    ({"seeds": [0, 1, 0]}, "seed 0 appears more than once"),
    ({"studies.s4_d2l.seeds": 9}, "studies.s4_d2l.seeds = 9, but the top-level seeds list has only 5"),
])
def test_bad_seeds_are_named(real_params, change, expected):
    for path, value in change.items():
        *parents, last = path.split(".")
        node = real_params
        for key in parents:
            node = node[key]
        node[last] = value
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        parse_params(real_params)


def test_the_committed_pipeline_matches_params(real_params):
    check_runs(parse_params(real_params), REPO / "dvc.yaml")


def test_check_runs_names_missing_extra_and_changed_runs(real_params, tmp_path: Path):
    params = parse_params(real_params)
    runs = runs_mapping(params)
    del runs["s2_cnn"]
    runs["ghost"] = {"study": "s2_cnn", "p": "dropout", "seeds": "0"}
    runs["s2_mlp"]["seeds"] = "0,1"
    block = BEGIN + "    foreach:\n" + "".join(f"      {name}: {yaml.safe_dump(run, default_flow_style=True)}"
                                               for name, run in runs.items()) + END
    path = tmp_path / "dvc.yaml"
    path.write_text(BLOCK.sub(lambda _: block, (REPO / "dvc.yaml").read_text()))
    with pytest.raises(DroplabError) as info:
        check_runs(params, path)
    message = str(info.value)
    for fragment in ("missing: s2_cnn", "not in params.yaml: ghost", "changed: s2_mlp"):
        assert fragment in message
    with pytest.raises(DroplabError, match="cannot read the train stage's runs"):
        check_runs(params, tmp_path / "absent.yaml")


def test_droplab_runs_rewrites_only_the_block(real_params, tmp_path: Path):
    real_params["studies"]["s2_cnn"]["seeds"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(real_params))
    original = (REPO / "dvc.yaml").read_text()
    (tmp_path / "dvc.yaml").write_text(original)
    done = subprocess.run([sys.executable, "-m", "droplab", "runs"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "dvc.yaml").read_text()
    # comments and every other stage untouched
    assert PLOTS_BLOCK.sub("", BLOCK.sub("", written)) == PLOTS_BLOCK.sub("", BLOCK.sub("", original))
    params = parse_params(real_params)
    assert yaml.safe_load(written)["stages"]["train"]["foreach"] == runs_mapping(params)
    assert f"dvc.yaml: {len(params.runs())} runs" in done.stdout
    check_runs(params, tmp_path / "dvc.yaml")


def test_a_pipeline_without_the_block_is_refused(real_params, tmp_path: Path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(DroplabError, match="no generated block .* in the train stage"):
        write_runs(parse_params(real_params), tmp_path / "dvc.yaml")
    (tmp_path / "dvc.yaml").write_text(PLOTS_BLOCK.sub("", (REPO / "dvc.yaml").read_text()))
    with pytest.raises(DroplabError, match="no generated block .* under the top-level plots:"):
        write_runs(parse_params(real_params), tmp_path / "dvc.yaml")


def test_every_plot_draws_a_git_tracked_file_of_the_aggregate_stage(real_params):
    """A clone without the DVC cache must draw every top-level plot: each points at a file that an
    output with `cache: false` holds and the committed run wrote, through droplab's templates."""
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    plots = {name: spec for entry in pipeline["plots"] for name, spec in entry.items()}
    expected = {f"plots/curves/{study}_{metric}.tsv": "droplab_curves" for study in real_params["studies"]
                for metric in ("loss", "acc1")}
    expected |= {f"plots/test/{study}.tsv": "droplab_intervals" for study in real_params["studies"]}
    expected["plots/claims.tsv"] = "droplab_claims"
    assert {name: spec["template"] for name, spec in plots.items()} == expected
    for study, raw in real_params["studies"].items():
        assert plots[f"plots/curves/{study}_loss.tsv"]["title"].startswith(raw["title"])
    untracked = [next(iter(out)) for out in pipeline["stages"]["aggregate"]["outs"]
                 if isinstance(out, dict) and next(iter(out.values())).get("cache") is False]
    for name, spec in plots.items():
        assert any(name == out or name.startswith(out + "/") for out in untracked), name
        assert (REPO / ".dvc" / "plots" / f"{spec['template']}.json").is_file()
        header = (REPO / name).read_text().splitlines()[0].split("\t")  # committed: git has every one
        assert spec["x"] in header and spec["y"] in header, name


def test_the_lock_hashes_each_code_folder_by_its_tracked_files_alone():
    """A code folder's hash in dvc.lock must be what a fresh clone computes: Python's bytecode caches
    (whose bytes hold the checkout's mtimes) hashed with it would make every stage look changed there."""
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    folders = {dep["path"]: dep["nfiles"] for stage in lock.values() for dep in stage.get("deps", [])
               if dep.get("md5", "").endswith(".dir") and dep["path"].startswith("src/")}
    assert folders  # the stages depend on whole code packages
    for folder, nfiles in folders.items():
        tracked = subprocess.run(["git", "ls-files", folder], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.split()
        assert nfiles == len(tracked), f"{folder}: dvc.lock hashed {nfiles} files, git tracks {len(tracked)}"


def test_adding_a_variant_to_a_study_is_one_command_and_a_stale_plot_list_is_refused(real_params, tmp_path: Path):
    real_params["variants"]["s2_cnn_wide"] = {"model": "cnn", "p": "dropout", "channels": [128, 256]}
    real_params["studies"]["s2_cnn"]["variants"].append("s2_cnn_wide")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(real_params))
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    params = parse_params(real_params)
    with pytest.raises(DroplabError, match="missing: s2_cnn_wide"):
        check_runs(params, tmp_path / "dvc.yaml")
    done = subprocess.run([sys.executable, "-m", "droplab", "runs"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    assert written["stages"]["train"]["foreach"]["s2_cnn_wide"] == {"study": "s2_cnn", "p": "dropout",
                                                                     "seeds": "0,1,2"}
    check_runs(params, tmp_path / "dvc.yaml")
    stale = PLOTS_BLOCK.sub(lambda _: PLOTS_BEGIN + "  - s2_cnn_loss: {x: epoch}\n" + PLOTS_END,
                            (tmp_path / "dvc.yaml").read_text())  # runs current, plots hand-edited
    (tmp_path / "dvc.yaml").write_text(stale)
    with pytest.raises(DroplabError, match="the top-level plots are out of date with params.yaml's studies"):
        check_runs(params, tmp_path / "dvc.yaml")


def test_a_swept_variants_stage_tracks_its_studys_sweep_not_dropout(real_params):
    """Its rates come from the sweep, so `-S dropout=...` must not rerun it; the sweep's rates must."""
    mapping = runs_mapping(parse_params(real_params))
    assert mapping["s2_mlp"]["p"] == mapping["s2_mlp_no_bn"]["p"] == "studies.s2_mlp.sweep"
    assert mapping["s2_cnn"]["p"] == "dropout" and mapping["s2_mlp_no_dropout"]["p"] == "fixed_p.none"


def test_each_variant_config_changes_exactly_when_its_runs_would(real_params, tmp_path: Path):
    """The train stages depend on data/configs/<variant>.json instead of on params: `dropout`
    changes the files of the variants that follow it and no other; a variant no longer trained
    loses its file."""
    folder = tmp_path / "configs"
    write_configs(parse_params(real_params), folder)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert set(before) == {f"{name}.json" for name in parse_params(real_params).trained_variants()}
    real_params["dropout"] = 0.8 if real_params["dropout"] != 0.8 else 0.3
    real_params["studies"]["s5_lenet"]["variants"].remove("s5_linear")
    del real_params["variants"]["s5_linear"]
    params = parse_params(real_params)
    write_configs(params, folder)
    after = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert set(before) - set(after) == {"s5_linear.json"}
    changed = {name.removesuffix(".json") for name in after if after[name] != before[name]}
    assert changed == {name for name in params.trained_variants() if params.rate_key(name) == "dropout"}
    assert json.loads(after["s2_cnn.json"])["runs"][0]["rates"] == [real_params["dropout"]]


def test_the_train_stage_reads_back_exactly_what_params_yaml_resolves_to(real_params, tmp_path: Path):
    """The normal path: each variant's recorded config parses back to `Params.resolve`'s, rate by rate, so
    training on the recorded file trains on the same numbers as before."""
    params = parse_params(real_params)
    write_configs(params, tmp_path)
    for variant in params.trained_variants():
        recorded = read_variant_config(params, variant, tmp_path)
        assert recorded.runs == [params.resolve(variant, rate) for rate in params.sweep_rates(variant) or [None]]
        assert recorded.analysis == params.analysis


def test_params_edited_after_validate_stop_the_train_stage_naming_the_key(real_params, tmp_path: Path):
    write_configs(parse_params(real_params), tmp_path)
    real_params["studies"]["s2_cnn"]["cpu"]["train"]["lr"] = 0.5
    with pytest.raises(DroplabError, match=r"^params.yaml changed since the validate stage ran: runs.0.train.lr is "
                                           r"0.5 in it, .* in .*s2_cnn.json; run dvc repro again$"):
        read_variant_config(parse_params(real_params), "s2_cnn", tmp_path)
    with pytest.raises(DroplabError, match="absent/s2_cnn.json: cannot read the config the validate stage writes"):
        read_variant_config(parse_params(real_params), "s2_cnn", tmp_path / "absent")


def test_first_difference_names_the_path_and_both_values():
    assert first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == ("a.1.b", 2, 3)
    assert first_difference({"a": 1}, {"a": 1}) is None
    assert first_difference({"a": 1}, {"a": 1, "c": 2}) == ("the whole config", {"a": 1}, {"a": 1, "c": 2})


MISREAD = ["null", "Null", "yes", "No", "on", "OFF", "true", "y", "~", "1e3", "0x10", "0o10", "12", "1_000", ".5",
           "0.5", "-1", "2001-12-14", "s2_mlp", "a:b", "a #b", "'q'"]


@pytest.mark.parametrize("text", MISREAD)
def test_every_generated_scalar_reads_back_as_the_same_string(text: str):
    """Under PyYAML (droplab's checks) and DVC's ruamel (YAML 1.2) alike."""
    from ruamel.yaml import YAML

    assert yaml.safe_load(f"{{k: {yaml_scalar(text)}}}") == {"k": text}
    assert YAML(typ="safe", pure=True).load(f"{{k: {yaml_scalar(text)}}}") == {"k": text}
    assert yaml.safe_load(f"{yaml_scalar(text)}: 1") == {text: 1}


def _renamed(raw: dict, old: str, new: str) -> None:
    """Variant `old` renamed `new` everywhere params.yaml names it."""
    raw["variants"] = {new if name == old else name: spec for name, spec in raw["variants"].items()}
    for study in raw["studies"].values():
        study["variants"] = [new if name == old else name for name in study["variants"]]
        study["twins"] = {new if k == old else k: new if v == old else v for k, v in study.get("twins", {}).items()}
        if study.get("sweep", {}).get("select") == old:
            study["sweep"]["select"] = new


@pytest.mark.parametrize("name", ["null", "yes", "1e3", "0x10", "123"])
def test_names_yaml_would_misread_are_generated_quoted(tiny_params, tmp_path: Path, name: str):
    """A variant named `null` is a valid name; its dvc.yaml item must stay the string, not become None."""
    _renamed(tiny_params, "s2_cnn", name)
    params = parse_params(tiny_params)
    pipeline = tmp_path / "dvc.yaml"
    pipeline.write_text((REPO / "dvc.yaml").read_text())
    write_runs(params, pipeline)
    assert name in yaml.safe_load(pipeline.read_text())["stages"]["train"]["foreach"]
    check_runs(params, pipeline)


def test_a_name_ending_in_a_newline_is_refused_everywhere(tiny_params):
    _renamed(tiny_params, "s2_cnn", "s2_cnn\n")
    with pytest.raises(ConfigError, match=r"name 's2_cnn\\n' may use only letters"):
        parse_params(tiny_params)


def test_a_config_that_trains_nothing_is_refused_so_no_empty_foreach_is_written(tiny_params):
    for study in tiny_params["studies"].values():
        study["cpu"] = {**study.get("cpu", {}), "skip": list(study["variants"]), "skip_reason": "none"}
    with pytest.raises(ConfigError, match="no variant trains at scale cpu"):
        parse_params(tiny_params)
