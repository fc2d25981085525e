"""The aggregate stage on hand-made run metrics: means, intervals, the sweep's selection, the
regime gate, comparisons, claims, the BN analysis check, bar-plot data."""

import json
import statistics
from pathlib import Path

import pytest
import torch
import yaml
from scipy import stats as sps

from droplab.analysis.bn_analysis import variance_shifts
from droplab.config import parse_params
from droplab.models.blocks import Dropout
from droplab.models.norm import DropoutBatchNorm2d
from droplab.records import BnReport, RunResult, dump
from droplab.results import aggregate
from droplab.results.claims import ClaimsError, load_claims

EPOCHS = 8
# a curve that overfits by every threshold below: lowest validation loss at epoch 3 of 8, +50% by
# the end, train top-1 0.2 above validation top-1 there; and one that keeps improving
OVERFITS = [{"epoch": e, "train_loss": 1.0 / e, "train_acc1": 0.6 + 0.05 * e, "train_acc5": 1.0,
             "val_loss": 0.6 + 0.1 * abs(e - 3), "val_acc1": 0.75 + 0.0 * e, "val_acc5": 1.0, "lr": 0.1}
            for e in range(1, EPOCHS + 1)]
IMPROVES = [{**row, "train_acc1": 0.7, "val_acc1": 0.7, "val_loss": 1.0 - 0.05 * row["epoch"]} for row in OVERFITS]
def TRAIN_ACC1(acc1: float, seed: int) -> float:  # noqa: N802 (a formula, named as one)
    """Train top-1 of a run: its test top-1 plus a seed-dependent overfit, unlike any other metric."""
    return min(1.0, acc1 + 0.05 + 0.01 * seed)


HEADER = {"regimes": {"trained": {"floors": {"s4_d2l": 0.5, "s2_cnn": 0.5}},
                      "overfitting": {"lowest_val_loss_by": 0.75, "val_loss_rise": 0.05, "train_val_gap": 0.05}},
          "sensitivity": {"loss_tolerance": 0.03}, "checks": {"theory_gap": 0.05}}


def _write_runs(params, metrics_dir: Path, acc1: dict[str, list[float]], curves: dict[str, list] | None = None,
                val_loss: dict[str, list[float]] | None = None) -> None:
    """Per-run metrics and BN files as the train stage writes them; test acc1 as given (by label),
    the rest derived: D = 1 + acc1, recalibration gain = acc1 / 10, loss = 1 - acc1, train top-1
    TRAIN_ACC1(acc1, seed)."""
    for run in params.runs().values():
        index = params.seeds.index(run.seed)
        value = acc1[run.label][index]
        split = {"loss": 1 - value, "acc1": value, "acc5": min(1.0, value + 0.1), "f1_macro": value - 0.01}
        val = {**split, "loss": val_loss[run.label][index]} if val_loss and run.label in val_loss else split
        history = (curves or {}).get(run.label, IMPROVES)
        path = run.path(metrics_dir / "train", ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        train = {**split, "acc1": TRAIN_ACC1(value, run.seed)}
        path.write_text(dump(RunResult.model_validate({
            "best_epoch": 1, "train": train, "val": val, "test": {**split, "f1_per_class": {"a": value, "b": value}},
            "sizes": {"train": 10, "val": 5, "test": 5}, "history": history})))
        spread = {"mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0}
        layer = {"role": "block", "fed_by_dropout": "direct", "gamma": spread, "beta": spread,
                 "dropout_variance_ratio": 1 + value, "dropout_variance_ratio_theory": 1 + value,
                 "theory_gap": value / 100, "stored_variance_shift": 1.5}
        stem = {**layer, "role": "stem", "dropout_variance_ratio": 9.0}
        bn = {"bn_layers": 2, "layers": {"stem.bn": stem, "block.bn": layer},
              "dropout_variance_ratio_blocks": 1 + value, "stored_variance_shift_blocks": 1.5,
              "recalibration": {"test_acc1_before": value, "test_acc1_after": value + value / 10,
                                "test_acc1_gain": value / 10, "test_loss_before": 1 - value,
                                "test_loss_after": 1 - value}}
        path = run.path(metrics_dir / "bn", ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(BnReport.model_validate(bn)))


def _claims(tmp_path: Path, claims: list[dict], header: dict = HEADER) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({**header, "claims": claims}))
    return path


@pytest.fixture
def small(real_params, tmp_path: Path):
    raw = real_params
    raw["variants"] = {name: raw["variants"][name] for name in ("s4_mlp_p2_p5", "s4_mlp_p5_p2", "s2_cnn")}
    raw["skipped_variants"] = ["resnet18_avg"]  # as `droplab tiny --keep` records what it leaves out
    raw["studies"] = {"s4_d2l": {**raw["studies"]["s4_d2l"], "variants": ["s4_mlp_p2_p5", "s4_mlp_p5_p2"],
                                 "seeds": 4},
                      "s2_cnn": {"title": "one seed", "variants": ["s2_cnn"]}}
    params = parse_params(raw)
    # p2_p5's seed 3 ends at 0.45, under the study's floor of 0.5
    acc1 = {"s4_mlp_p2_p5": [0.80, 0.81, 0.79, 0.45], "s4_mlp_p5_p2": [0.90, 0.91, 0.89, 0.90], "s2_cnn": [0.7]}
    _write_runs(params, tmp_path / "metrics", acc1)
    claims = _claims(tmp_path, [
        {"id": "planted", "study": "s4_d2l", "says": "p5_p2 is better", "metric": "test.acc1",
         "expect": "s4_mlp_p5_p2 > s4_mlp_p2_p5"},
        {"id": "planted-on-trained", "study": "s4_d2l", "says": "p5_p2 has the larger D",
         "metric": "bn.dropout_variance_ratio", "expect": "s4_mlp_p5_p2 > 1.5"},
        {"id": "one-seed", "study": "s2_cnn", "says": "the cnn beats 0.6", "metric": "test.acc1",
         "expect": "s2_cnn > 0.6"},
        {"id": "absent", "study": "s2_cnn", "says": "x", "metric": "val.acc5", "expect": "resnet18_avg > s2_cnn"}])
    stats = aggregate.main(params, tmp_path / "metrics", tmp_path / "plots", tmp_path / "report", claims)
    return params, acc1, stats, tmp_path


def test_summary_holds_the_headline_only(small):
    _, acc1, stats, root = small
    summary = json.loads((root / "metrics/summary.json").read_text())
    assert list(summary) == [*acc1, "claims"]  # a variant's mean test top-1 under its own name
    assert {name: summary[name] for name in acc1} == {name: pytest.approx(statistics.fmean(values), abs=1e-6)
                                                      for name, values in acc1.items()}
    verdicts = [claim["verdict"] for claim in stats["claims"]]  # counted by hand from the planted claims
    assert summary["claims"] == {"confirmed": sum(v == "confirmed" for v in verdicts),
                                 "contradicted": sum(v == "contradicted" for v in verdicts),
                                 "inconclusive": sum(v == "inconclusive" for v in verdicts),
                                 "not_testable": sum(v.startswith("not testable at this scale") for v in verdicts),
                                 "not_run": sum(v == "not run" for v in verdicts)}
    assert sum(summary["claims"].values()) == len(verdicts) == 4


def test_plot_data_holds_seed_means_with_their_intervals(small):
    _, acc1, stats, root = small
    values = acc1["s4_mlp_p2_p5"]
    low, high = sps.t.interval(0.95, len(values) - 1, loc=statistics.fmean(values), scale=sps.sem(values))
    rows = (root / "plots/test/s4_d2l.tsv").read_text().splitlines()
    assert rows[0] == "variant\ttest_acc1\tlow\thigh\tseeds"
    name, mean, *interval, seeds = rows[1].split("\t")
    assert name == "s4_mlp_p2_p5" and seeds == "4"
    assert (float(mean), *map(float, interval)) == pytest.approx((statistics.fmean(values), low, high), abs=1e-6)
    assert (root / "plots/test/s2_cnn.tsv").read_text().splitlines()[1] == "s2_cnn\t0.700000\t0.700000\t0.700000\t1"
    claims = (root / "plots/claims.tsv").read_text().splitlines()
    assert len(claims) == 1 + len(stats["claims"])  # one step each
    assert "planted\t\t\t\tnot testable\tnot reached" in claims


def test_intervals_and_comparisons_match_scipy(small):
    _, acc1, stats, _ = small
    values = acc1["s4_mlp_p5_p2"]
    interval = sps.t.interval(0.95, len(values) - 1, loc=statistics.fmean(values), scale=sps.sem(values))
    stat = stats["variants"]["s4_mlp_p5_p2"]["test.acc1"]
    assert (stat["ci_low"], stat["ci_high"]) == pytest.approx(interval, abs=1e-6)
    [comparison] = stats["comparisons"]["s4_d2l"]
    assert (comparison["a"], comparison["b"], comparison["test"]) == ("s4_mlp_p2_p5", "s4_mlp_p5_p2", "Welch")
    welch = sps.ttest_ind(acc1["s4_mlp_p2_p5"], acc1["s4_mlp_p5_p2"], equal_var=False)
    assert comparison["p_value"] == pytest.approx(welch.pvalue, abs=1e-6)
    assert comparison["p_holm"] == pytest.approx(min(1.0, welch.pvalue), abs=1e-6)  # one pair: Holm changes nothing
    assert stats["comparisons"]["s2_cnn"] == []


def test_claims_are_judged_only_on_trained_runs(small):
    _, _, stats, _ = small
    verdicts = {claim["id"]: claim["verdict"] for claim in stats["claims"]}
    assert verdicts["planted"] == ("not testable at this scale: not trained: s4_mlp_p2_p5 seed 3 (0.4500) at or "
                                   "below the floor 0.5000 (0.5, declared)")
    assert verdicts["absent"] == "not run"
    # one seed: no interval, nothing to test or adjust
    assert verdicts["one-seed"] == "inconclusive"
    # the BN claim reads only the block BN (the stem's D of 9 would otherwise decide it)
    assert set(stats["layers"]["s2_cnn"]["dropout_variance_ratio"]) == {"block.bn"}
    assert stats["regimes"]["s4_d2l"]["below_floor"] == {"s4_mlp_p2_p5": [3]}
    assert stats["regimes"]["s4_d2l"]["floor"] == {"value": 0.5, "source": "0.5, declared"}


def test_a_regularization_claim_needs_its_twin_to_overfit(real_params, tmp_path: Path):
    raw = real_params
    names = ("s2_cnn", "s2_cnn_no_dropout")
    raw["variants"] = {name: raw["variants"][name] for name in names}
    raw["studies"] = {"s2_cnn": {"title": "t", "variants": list(names), "seeds": 3}}
    params = parse_params(raw)
    acc1 = {"s2_cnn": [0.80, 0.82, 0.81], "s2_cnn_no_dropout": [0.70, 0.72, 0.71]}
    claim = {"id": "helps", "study": "s2_cnn", "says": "x", "metric": "test.acc1",
             "expect": "s2_cnn > s2_cnn_no_dropout", "paired": True, "overfits": "s2_cnn_no_dropout"}
    header = {**HEADER, "regimes": {**HEADER["regimes"], "trained": {"floors": {"s2_cnn": 0.5}}}}
    for curves, tested in ((IMPROVES, False), (OVERFITS, True)):
        _write_runs(params, tmp_path / "metrics", acc1, {"s2_cnn_no_dropout": curves})
        stats = aggregate.main(params, tmp_path / "metrics", tmp_path / "plots", tmp_path / "report",
                               _claims(tmp_path, [claim], header))
        [result] = stats["claims"]
        measured = stats["regimes"]["s2_cnn"]["overfitting"]["s2_cnn_no_dropout"]
        mean_val_loss = [statistics.fmean([row["val_loss"]] * 3) for row in curves]
        lowest = min(range(EPOCHS), key=mean_val_loss.__getitem__)
        assert measured["lowest_val_loss_epoch"] == lowest + 1
        assert measured["val_loss_rise"] == pytest.approx(mean_val_loss[-1] / mean_val_loss[lowest] - 1, abs=1e-6)
        assert measured["train_val_gap"] == pytest.approx(curves[-1]["train_acc1"] - curves[-1]["val_acc1"], abs=1e-6)
        if tested:
            assert measured["overfits"] and result["verdict"] == "confirmed" and result["p_value"] is not None
        else:
            assert not measured["overfits"] and result["p_value"] is None
            assert result["verdict"].startswith("not testable at this scale: s2_cnn_no_dropout does not overfit: "
                                                "lowest mean validation loss at epoch 8 of 8 (needs ≤ 6)")


def test_the_sweep_selects_on_validation_and_claims_read_the_selected_rate(real_params, tmp_path: Path):
    raw = real_params
    names = ("s2_mlp", "s2_mlp_no_bn", "s2_mlp_no_dropout", "s2_mlp_linear")
    raw["variants"] = {name: raw["variants"][name] for name in names}
    raw["studies"] = {"s2_mlp": {**raw["studies"]["s2_mlp"], "seeds": 3,
                                 "sweep": {"rates": [0.2, 0.5, 0.8], "select": "s2_mlp", "metric": "val.loss"}}}
    params = parse_params(raw)
    rates = {"p20": 0.30, "p50": 0.25, "p80": 0.28}  # mean validation loss of s2_mlp at each rate
    val_loss = {f"s2_mlp_{tag}": [loss - 0.01, loss, loss + 0.01] for tag, loss in rates.items()}
    # test top-1 prefers p80 for s2_mlp: the selection must not look at it
    acc1 = {"s2_mlp_p20": [0.80, 0.81, 0.82], "s2_mlp_p50": [0.83, 0.84, 0.85], "s2_mlp_p80": [0.90, 0.91, 0.92],
            **{f"s2_mlp_no_bn_{tag}": [0.7, 0.71, 0.72] for tag in rates},
            "s2_mlp_no_dropout": [0.75, 0.77, 0.76], "s2_mlp_linear": [0.6, 0.61, 0.62]}
    _write_runs(params, tmp_path / "metrics", acc1, val_loss=val_loss)
    header = {**HEADER, "regimes": {**HEADER["regimes"], "trained": {"floors": {"s2_mlp": "s2_mlp_no_bn"}}}}
    claims = _claims(tmp_path, [{"id": "helps", "study": "s2_mlp", "says": "x", "metric": "test.acc1",
                                 "expect": "s2_mlp > s2_mlp_no_dropout", "paired": True}], header)
    stats = aggregate.main(params, tmp_path / "metrics", tmp_path / "plots", tmp_path / "report", claims)
    sweep = stats["sweeps"]["s2_mlp"]
    assert sweep["selected"] == 0.5
    assert sweep["labels"] == {"s2_mlp": "s2_mlp_p50", "s2_mlp_no_bn": "s2_mlp_no_bn_p50"}
    assert {tag: stat["s2_mlp"]["mean"] for tag, stat in sweep["rates"].items()} == pytest.approx(rates)
    assert stats["studies"]["s2_mlp"] == ["s2_mlp_p50", "s2_mlp_no_bn_p50", "s2_mlp_no_dropout", "s2_mlp_linear"]
    [claim] = stats["claims"]
    assert claim["compared"] == ["s2_mlp_p50", "s2_mlp_no_dropout"]
    expected = sps.ttest_rel(acc1["s2_mlp_p50"], acc1["s2_mlp_no_dropout"])
    assert claim["p_value"] == pytest.approx(expected.pvalue, abs=1e-6)
    # the floor is the ablation's mean here (0.71): every compared run beats it
    assert stats["regimes"]["s2_mlp"]["floor"]["value"] == pytest.approx(0.71)


def test_recalibration_gain_against_the_no_dropout_twin(real_params, tmp_path: Path):
    raw = real_params
    raw["variants"] = {name: raw["variants"][name] for name in ("s2_cnn", "s2_cnn_no_dropout")}
    raw["studies"] = {"s2_cnn": {"title": "t", "variants": ["s2_cnn", "s2_cnn_no_dropout"], "seeds": 3,
                                 "twins": {"s2_cnn": "s2_cnn_no_dropout"}}}
    params = parse_params(raw)
    acc1 = {"s2_cnn": [0.80, 0.85, 0.90], "s2_cnn_no_dropout": [0.70, 0.90, 0.60]}
    _write_runs(params, tmp_path / "metrics", acc1)
    values = aggregate.collect(params, tmp_path / "metrics").values
    # gains are acc1 / 10, so seed by seed: 0.08 - 0.07, 0.085 - 0.09, 0.09 - 0.06
    assert values["s2_cnn"]["bn.recal_gain_vs_twin"] == pytest.approx([0.01, -0.005, 0.03])
    assert "bn.recal_gain_vs_twin" not in values["s2_cnn_no_dropout"]
    assert values["s2_cnn"]["recal.acc1"] == pytest.approx([0.88, 0.935, 0.99])


def test_exploratory_verdicts_follow_the_holm_adjusted_p_and_pair_where_declared(real_params, tmp_path: Path):
    raw = real_params
    names = ("s2_cnn", "s2_cnn_no_bn", "s2_cnn_no_dropout")
    raw["variants"] = {name: raw["variants"][name] for name in names}
    raw["studies"] = {"s2_cnn": {"title": "t", "variants": list(names), "seeds": 3}}
    params = parse_params(raw)
    acc1 = {"s2_cnn": [0.80, 0.82, 0.81], "s2_cnn_no_bn": [0.83, 0.85, 0.845], "s2_cnn_no_dropout": [0.60, 0.90, 0.75]}
    _write_runs(params, tmp_path / "metrics", acc1)
    values = aggregate.collect(params, tmp_path / "metrics").values
    paired = {frozenset(("s2_cnn", "s2_cnn_no_dropout"))}
    table = aggregate.exploratory_comparisons(params, values, {}, paired)["s2_cnn"]
    rows = {(row["a"], row["b"]): row for row in table}
    raw_p = {pair: (sps.ttest_rel if frozenset(pair) in paired else
                    lambda a, b: sps.ttest_ind(a, b, equal_var=False))(acc1[pair[0]], acc1[pair[1]]).pvalue
             for pair in rows}
    assert rows[("s2_cnn", "s2_cnn_no_dropout")]["test"] == "paired"
    ranked = sorted(rows, key=raw_p.get)  # Holm by hand: the k-th smallest p times (m - k), running maximum
    adjusted, running = {}, 0.0
    for k, pair in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - k) * raw_p[pair]))
        adjusted[pair] = running
    for pair, row in rows.items():
        assert row["p_value"] == pytest.approx(raw_p[pair], abs=1e-6)
        assert row["p_holm"] == pytest.approx(adjusted[pair], abs=1e-6)
        assert row["verdict"] == ("differs" if adjusted[pair] < 0.05 else
                                  "not distinguishable from seed noise at this number of seeds")
    assert raw_p[("s2_cnn", "s2_cnn_no_bn")] < 0.05 <= adjusted[("s2_cnn", "s2_cnn_no_bn")]  # Holm changes one


class _OverScaled(Dropout):
    """A broken dropout: kept units scaled by 1 / (1 - p)^2 instead of 1 / (1 - p)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) / (1.0 - self.p) if self.training else x


def _gaps(broken: bool) -> list[dict]:
    torch.manual_seed(0)
    bn = DropoutBatchNorm2d(4, p=0.5, placement="before_bn")
    if broken:
        bn.dropout = _OverScaled(0.5)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), bn)
    inputs = torch.randn(256, 1, 8, 8) + 1.0
    shifts = variance_shifts(model, lambda: [inputs[:128], inputs[128:]], seed=0)
    return [{"run": "r seed 0", "layer": name, "theory_gap": shift.theory_gap}
            for name, shift in shifts.items() if shift.fed_by_dropout == "direct"]


def test_the_theory_check_passes_on_the_real_analysis_and_fails_on_a_broken_dropout():
    tolerance = 0.05
    passed = aggregate.theory_check(aggregate.Collected(theory_gaps=_gaps(broken=False)), tolerance)
    assert passed["passed"] and passed["layers_checked"] == 1 and passed["largest_gap"] < tolerance
    failed = aggregate.theory_check(aggregate.Collected(theory_gaps=_gaps(broken=True)), tolerance)
    assert not failed["passed"] and failed["failures"][0]["layer"] == "1"
    assert failed["failures"][0]["theory_gap"] > 0.5  # D doubles, the theory does not


def test_claims_name_their_study_floor_and_overfit_variant(small, tmp_path: Path):
    params, _, _, _ = small
    bad = _claims(tmp_path, [{"id": "x", "study": "s9", "says": "x", "metric": "test.acc1",
                              "expect": "s2_cnn > s4_mlp_p2_p5"}])
    with pytest.raises(ClaimsError, match="claim 'x': study 's9' is not in params.yaml studies"):
        aggregate.check_claim_variants(load_claims(bad), params, bad)
    bad = _claims(tmp_path, [{"id": "x", "study": "s2_cnn", "says": "x", "metric": "test.acc1",
                              "expect": "s2_cnn > s4_mlp_p2_p5", "overfits": "s2_cnn_nope"}])
    with pytest.raises(ClaimsError, match="claim 'x' names 's2_cnn_nope'"):
        aggregate.check_claim_variants(load_claims(bad), params, bad)
    header = {**HEADER, "regimes": {**HEADER["regimes"], "trained": {"floors": {"s2_cnn": "nope"}}}}
    bad = _claims(tmp_path, [], header)
    with pytest.raises(ClaimsError, match="regimes.trained.floors.s2_cnn: 'nope' is not in params.yaml"):
        aggregate.check_claim_variants(load_claims(bad), params, bad)
    header = {**HEADER, "regimes": {**HEADER["regimes"], "trained": {"floors": {"s2_cnm": 0.5}}}}
    bad = _claims(tmp_path, [], header)
    with pytest.raises(ClaimsError, match="regimes.trained.floors.s2_cnm: not a params.yaml study"):
        aggregate.check_claim_variants(load_claims(bad), params, bad)


def test_the_report_shows_a_failed_theory_check_as_an_error():
    from droplab.results.report_tables import check_line

    tolerance = 0.05
    failed = check_line(aggregate.theory_check(aggregate.Collected(theory_gaps=_gaps(broken=True)), tolerance))
    assert failed.startswith("**ERROR: the BN analysis check FAILED** at 1 of 1 layers")
    passed = check_line(aggregate.theory_check(aggregate.Collected(theory_gaps=_gaps(broken=False)), tolerance))
    assert passed.endswith(").") and "passed (largest gap" in passed
    assert "nothing to check" in check_line(aggregate.theory_check(aggregate.Collected(), tolerance))


def test_a_claim_on_train_acc1_gets_a_real_verdict(real_params, tmp_path: Path):
    """Every metric the runs record can be claimed and is judged, train included: the verdict and
    its numbers against the per-seed train top-1 this test wrote, computed here with scipy."""
    raw = real_params
    raw["variants"] = {name: raw["variants"][name] for name in ("s4_mlp_p2_p5", "s4_mlp_p5_p2")}
    raw["studies"] = {"s4_d2l": {**raw["studies"]["s4_d2l"], "variants": list(raw["variants"]), "seeds": 4}}
    params = parse_params(raw)
    acc1 = {"s4_mlp_p2_p5": [0.80, 0.81, 0.79, 0.80], "s4_mlp_p5_p2": [0.70, 0.72, 0.71, 0.69]}
    _write_runs(params, tmp_path / "metrics", acc1)
    claims = _claims(tmp_path, [{"id": "train-top1", "study": "s4_d2l", "says": "p2_p5 fits its training set better",
                                 "metric": "train.acc1", "expect": "s4_mlp_p2_p5 > s4_mlp_p5_p2", "paired": True}],
                     {**HEADER, "regimes": {**HEADER["regimes"], "trained": {"floors": {"s4_d2l": 0.5}}}})
    stats = aggregate.main(params, tmp_path / "metrics", tmp_path / "plots", tmp_path / "report", claims)
    [claim] = stats["claims"]
    seeds = params.seeds_of("s4_mlp_p2_p5")
    a = [TRAIN_ACC1(value, seed) for value, seed in zip(acc1["s4_mlp_p2_p5"], seeds, strict=True)]
    b = [TRAIN_ACC1(value, seed) for value, seed in zip(acc1["s4_mlp_p5_p2"], seeds, strict=True)]
    paired = sps.ttest_rel(a, b)
    low, high = paired.confidence_interval(0.95)
    [step] = claim["steps"]
    assert claim["regime"] == "reached" and claim["verdict"] == "confirmed"
    assert step["difference"] == pytest.approx(statistics.fmean(a) - statistics.fmean(b), abs=1e-6)
    assert (step["ci_low"], step["ci_high"]) == pytest.approx((low, high), abs=1e-6)
    assert claim["p_value"] == pytest.approx(paired.pvalue, abs=1e-6)
    assert stats["variants"]["s4_mlp_p2_p5"]["train.acc1"]["mean"] == pytest.approx(statistics.fmean(a), abs=1e-6)


def test_collect_yields_every_metric_of_the_table(small):
    """A run with BN records every metric of droplab.metric_table (the twin gain needs a twin), and
    a layerwise claim's series exist per BN layer: no claimable name is left uncollected."""
    from droplab.metric_table import LAYERWISE, METRICS
    params, _, _, root = small
    collected = aggregate.collect(params, root / "metrics")
    assert list(collected.values["s4_mlp_p2_p5"]) == [key for key in METRICS if key != "bn.recal_gain_vs_twin"]
    for key in LAYERWISE:
        assert collected.layers["s4_mlp_p2_p5"][key.removeprefix("bn.")]["block.bn"]


def test_a_broken_run_file_stops_the_aggregate_naming_file_and_key(small):
    """Per-seed files are read as records: a missing key is one error naming the file and the key."""
    from droplab.errors import DroplabError
    params, _, _, root = small
    path = next(iter(params.runs().values())).path(root / "metrics" / "bn", ".json")
    broken = json.loads(path.read_text())
    del broken["recalibration"]
    path.write_text(json.dumps(broken))
    with pytest.raises(DroplabError, match=rf"^{path}: recalibration: .*missing.*; rerun its train stage"):
        aggregate.collect(params, root / "metrics")
