"""The aggregate stage on hand-made run metrics: means, intervals, comparisons, claims, bar-plot data."""

import json
import statistics
from pathlib import Path

import pytest
import yaml
from scipy import stats as sps

from droplab.config import parse_params
from droplab.results import aggregate


def _write_runs(params, metrics_dir: Path, acc1: dict[str, list[float]]) -> None:
    """Per-run metrics and BN files as the train stage writes them; test acc1 as given, the rest
    derived: D = 1 + acc1, recalibration gain = acc1 / 10."""
    for run in params.runs().values():
        value = acc1[run.variant][params.seeds.index(run.seed)]
        split = {"loss": 1 - value, "acc1": value, "acc5": min(1.0, value + 0.1), "f1_macro": value - 0.01}
        path = run.path(metrics_dir / "train", ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"best_epoch": 1, "train": split, "val": split, "test": split}))
        layer = {"role": "block", "fed_by_dropout": "direct", "dropout_variance_ratio": 1 + value,
                 "theory_gap": value / 100, "stored_variance_shift": 1.5}
        stem = {**layer, "role": "stem", "dropout_variance_ratio": 9.0}
        bn = {"bn_layers": 2, "layers": {"stem.bn": stem, "block.bn": layer},
              "dropout_variance_ratio_blocks": 1 + value,
              "stored_variance_shift_blocks": 1.5, "recalibration": {"test_acc1_gain": value / 10}}
        path = run.path(metrics_dir / "bn", ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(bn))


@pytest.fixture
def small(real_params, tmp_path: Path):
    raw = real_params
    raw["variants"] = {name: raw["variants"][name] for name in ("s4_mlp_p2_p5", "s4_mlp_p5_p2", "s2_cnn")}
    raw["skipped_variants"] = ["resnet18_avg"]  # as `droplab tiny --keep` records what it leaves out
    raw["studies"] = {"s4_d2l": {**raw["studies"]["s4_d2l"], "seeds": 4},
                      "s2_cnn": {"title": "one seed", "variants": ["s2_cnn"]}}
    params = parse_params(raw)
    acc1 = {"s4_mlp_p2_p5": [0.80, 0.81, 0.79, 0.80], "s4_mlp_p5_p2": [0.90, 0.91, 0.89, 0.90], "s2_cnn": [0.7]}
    _write_runs(params, tmp_path / "metrics", acc1)
    # p2_p5's seed 3 ends with a test loss above ln(10) = 2.303, no better than uniform guessing: untrained
    last = tmp_path / "metrics/train/s4_mlp_p2_p5/seed3.json"
    metrics = json.loads(last.read_text())
    metrics["test"] = {**metrics["test"], "loss": 2.31}
    last.write_text(json.dumps(metrics))
    claims = tmp_path / "claims.yaml"
    claims.write_text(yaml.safe_dump([
        {"id": "planted", "study": "S4", "says": "p5_p2 is better", "metric": "test.acc1",
         "expect": "s4_mlp_p5_p2 > s4_mlp_p2_p5"},
        {"id": "planted-on-trained", "study": "S4", "says": "p5_p2 has the larger D",
         "metric": "bn.dropout_variance_ratio",
         "expect": "s4_mlp_p5_p2 > s2_cnn"},
        {"id": "one-seed", "study": "S2", "says": "cnn beats the mlp", "metric": "test.acc1",
         "expect": "s2_cnn > s4_mlp_p2_p5"},
        {"id": "absent", "study": "S1", "says": "x", "metric": "val.acc5", "expect": "resnet18_avg > s2_cnn"}]))
    stats = aggregate.main(params, tmp_path / "metrics", tmp_path / "plots", tmp_path / "report", claims, classes=10)
    return params, acc1, stats, tmp_path


def test_summary_holds_means_and_seed_sds(small):
    _, acc1, _, root = small
    summary = json.loads((root / "metrics/summary.json").read_text())
    values = acc1["s4_mlp_p2_p5"]
    assert summary["s4_mlp_p2_p5"]["seeds"] == 4 and summary["s4_mlp_p2_p5"]["untrained"] == 1
    assert summary["s4_mlp_p2_p5"]["test_acc1"] == pytest.approx(statistics.fmean(values), abs=1e-6)
    assert summary["s4_mlp_p2_p5"]["test_acc1_sd"] == pytest.approx(statistics.stdev(values), abs=1e-6)
    assert summary["s4_mlp_p2_p5"]["test_loss"] == pytest.approx(statistics.fmean([0.2, 0.19, 0.21, 2.31]), abs=1e-6)
    assert summary["s2_cnn"] == {"seeds": 1, "untrained": 0, "test_acc1": 0.7, "test_acc5": 0.8, "test_f1": 0.69,
                                 "test_loss": 0.3, "val_acc1": 0.7, "val_loss": 0.3, "dropout_D": 1.7,
                                 "stored_shift": 1.5, "recal_gain": 0.07}  # no SD with one seed


def test_intervals_and_comparisons_match_scipy(small):
    _, acc1, stats, _ = small
    values = acc1["s4_mlp_p5_p2"]
    interval = sps.t.interval(0.95, len(values) - 1, loc=statistics.fmean(values), scale=sps.sem(values))
    stat = stats["variants"]["s4_mlp_p5_p2"]["test.acc1"]
    assert (stat["ci_low"], stat["ci_high"]) == pytest.approx(interval, abs=1e-6)
    [comparison] = stats["comparisons"]["s4_d2l"]
    assert (comparison["a"], comparison["b"], comparison["metric"]) == ("s4_mlp_p2_p5", "s4_mlp_p5_p2", "test.acc1")
    welch = sps.ttest_ind(acc1["s4_mlp_p2_p5"], acc1["s4_mlp_p5_p2"], equal_var=False)
    assert comparison["difference"] == pytest.approx(statistics.fmean(acc1["s4_mlp_p2_p5"]) - 0.9, abs=1e-6)
    assert comparison["p_value"] == pytest.approx(welch.pvalue, abs=1e-6)
    assert comparison["p_holm"] == pytest.approx(min(1.0, welch.pvalue), abs=1e-6)  # one pair: Holm changes nothing
    assert stats["comparisons"]["s2_cnn"] == []


def test_claims_get_verdicts(small):
    _, _, stats, _ = small
    verdicts = {claim["id"]: claim["verdict"] for claim in stats["claims"]}
    # "planted" would be confirmed, but one of p2_p5's seeds is untrained; the BN claim reads only
    # the block BN (the stem's D of 9 would otherwise tie the two)
    assert verdicts == {"planted": "not confirmable: rests on untrained runs",
                        "planted-on-trained": "inconclusive (within seed noise)",
                        "one-seed": "inconclusive (within seed noise)", "absent": "not run"}
    assert stats["untrained"] == {"s4_mlp_p2_p5": [3]}
    assert set(stats["layers"]["s2_cnn"]["dropout_variance_ratio"]) == {"block.bn"}


def test_recalibration_gain_against_the_no_dropout_twin(real_params, tmp_path: Path):
    raw = real_params
    raw["variants"] = {name: raw["variants"][name] for name in ("s2_mlp", "s2_mlp_no_dropout")}
    raw["studies"] = {"s2_mlp": {**raw["studies"]["s2_mlp"], "variants": ["s2_mlp", "s2_mlp_no_dropout"], "seeds": 3}}
    params = parse_params(raw)
    acc1 = {"s2_mlp": [0.80, 0.85, 0.90], "s2_mlp_no_dropout": [0.70, 0.90, 0.60]}
    _write_runs(params, tmp_path / "metrics", acc1)
    values, _, _ = aggregate.run_values(params, tmp_path / "metrics", 10)
    # gains are acc1 / 10, so seed by seed: 0.08 - 0.07, 0.085 - 0.09, 0.09 - 0.06
    assert values["s2_mlp"]["bn.recal_gain_vs_twin"] == pytest.approx([0.01, -0.005, 0.03])
    assert "bn.recal_gain_vs_twin" not in values["s2_mlp_no_dropout"]


def test_bar_plot_data_per_study(small):
    params, _, stats, root = small
    rows = [line.split("\t") for line in (root / "plots/test/s4_d2l.tsv").read_text().splitlines()]
    assert rows[0] == ["variant", "test_acc1", "test_acc1_low", "test_acc1_high", "seeds"]
    assert [row[0] for row in rows[1:]] == params.studies["s4_d2l"].variants
    stat = stats["variants"]["s4_mlp_p2_p5"]["test.acc1"]
    assert [float(v) for v in rows[1][1:4]] == pytest.approx([stat["mean"], stat["ci_low"], stat["ci_high"]])
    one_seed = (root / "plots/test/s2_cnn.tsv").read_text().splitlines()[1].split("\t")
    assert one_seed == ["s2_cnn", "0.700000", "0.700000", "0.700000", "1"]


def test_exploratory_verdicts_follow_the_holm_adjusted_p(real_params, tmp_path: Path):
    raw = real_params
    names = ("s2_mlp", "s2_mlp_no_bn", "s2_mlp_no_dropout")
    raw["variants"] = {name: raw["variants"][name] for name in names}
    raw["studies"] = {"s2_mlp": {**raw["studies"]["s2_mlp"], "seeds": 3}}
    params = parse_params(raw)
    acc1 = {"s2_mlp": [0.80, 0.82, 0.81], "s2_mlp_no_bn": [0.83, 0.85, 0.845], "s2_mlp_no_dropout": [0.60, 0.90, 0.75]}
    _write_runs(params, tmp_path / "metrics", acc1)
    values, _, _ = aggregate.run_values(params, tmp_path / "metrics", 10)
    rows = {(row["a"], row["b"]): row for row in aggregate.exploratory_comparisons(params, values)["s2_mlp"]}
    raw_p = {pair: sps.ttest_ind(acc1[pair[0]], acc1[pair[1]], equal_var=False).pvalue for pair in rows}
    ranked = sorted(rows, key=raw_p.get)  # Holm by hand: the k-th smallest p times (m - k), running maximum
    adjusted, running = {}, 0.0
    for k, pair in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - k) * raw_p[pair]))
        adjusted[pair] = running
    for pair, row in rows.items():
        assert row["p_holm"] == pytest.approx(adjusted[pair], abs=1e-6)
        assert row["verdict"] == ("differs" if adjusted[pair] < 0.05 else
                                  "not distinguishable from seed noise at this number of seeds")
    assert raw_p[("s2_mlp", "s2_mlp_no_bn")] < 0.05 <= adjusted[("s2_mlp", "s2_mlp_no_bn")]  # Holm changes one
