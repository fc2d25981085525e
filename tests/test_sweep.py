"""The sweep report from `dvc exp show --json` output (shaped as DVC 3 prints it); the real queue
runs in test_pipeline.py."""

import json
import subprocess
from pathlib import Path

import pytest

from droplab.errors import DroplabError
from droplab.pipeline import sweep


def _experiment(name: str, state: str, dropout: float, stats: dict | None) -> dict:
    rev = f"{name:f<40}"[:40]
    STATS[rev] = stats
    data = {"params": {"params.yaml": {"data": {"dropout": dropout, "seeds": [0, 1]}}}}
    return {"revs": [{"rev": rev, "name": name, "data": data, "experiments": None}],
            "executor": {"state": state}, "name": name}


def _stat(mean: float, sd: float) -> dict:
    return {"n": 2, "mean": mean, "sd": sd, "ci_low": mean - 0.1, "ci_high": mean + 0.1}


def _variant(val_acc1: float, test_acc1: float) -> dict:
    """A variant's entry of report/stats.json, as the aggregate stage writes it."""
    return {"val.acc1": _stat(val_acc1, 0.01), "val.loss": _stat(1 - val_acc1, 0.02),
            "test.acc1": _stat(test_acc1, 0.01), "test.loss": _stat(1 - test_acc1, 0.03)}


def _stats(s2_mlp: dict, s2_cnn: dict) -> dict:
    """s2_mlp is swept inside the pipeline: its statistics sit under its selected rate's label."""
    return {"variants": {"s2_mlp_p50": s2_mlp, "s2_cnn": s2_cnn},
            "sweeps": {"s2_mlp": {"labels": {"s2_mlp": "s2_mlp_p50"}}}}


STATS: dict[str, dict | None] = {}  # commit -> its report/stats.json
SHOWN = [
    {"rev": "workspace", "name": None, "data": {}, "experiments": None},
    {"rev": "a" * 40, "name": "main", "data": {"params": {"params.yaml": {"data": {"dropout": 0.5, "seeds": [0, 1]}}}},
     "experiments": [
        _experiment("exp-a", "success", 0.2, _stats(_variant(0.80, 0.70), _variant(0.60, 0.61))),
        _experiment("exp-b", "success", 0.5, _stats(_variant(0.85, 0.71), _variant(0.60, 0.65))),
        _experiment("exp-c", "success", 0.8, _stats(_variant(0.85, 0.90), _variant(0.55, 0.99))),
        _experiment("exp-d", "failed", 0.9, None),
    ]},
]


def _collect(shown: list[dict], variants: list[str]):
    return sweep.collect(shown, variants, STATS.get)


def test_best_p_is_chosen_on_validation_never_on_test():
    frame = _collect(SHOWN, ["s2_mlp", "s2_cnn"])
    assert sorted(frame["p"].unique()) == [0.2, 0.5, 0.8]  # the failed experiment is left out
    best = sweep.best_rates(frame).set_index("variant")
    # s2_mlp: 0.5 and 0.8 tie on validation; the lower p wins although 0.8 has the higher test acc1.
    assert best.loc["s2_mlp", "p"] == 0.5 and best.loc["s2_mlp", "test_acc1"] == 0.71
    # s2_cnn: 0.2 and 0.5 tie; 0.8, with the best test accuracy by far, is never picked.
    assert best.loc["s2_cnn", "p"] == 0.2


def test_report_writes_table_figure_and_json(tmp_path: Path):
    text = sweep.report(_collect(SHOWN, ["s2_mlp"]), tmp_path)
    written = json.loads((tmp_path / "sweep.json").read_text())
    assert [(row["variant"], row["p"]) for row in written["best"]] == [("s2_mlp", 0.5)]
    assert [row["p"] for row in written["points"]] == [0.2, 0.5, 0.8]
    assert "![sweep](sweep.png)" in text
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "sweep.md").read_text() == text


def test_no_finished_experiment_is_an_error():
    with pytest.raises(DroplabError, match="no finished experiment has report/stats.json for s2_mlp"):
        _collect([{"rev": "workspace", "experiments": None}], ["s2_mlp"])


class ScriptedQueue:
    """`dvc` as the sweep calls it, for a queue whose workers have died: `exp show` reports one
    experiment queued and one left running by the dead worker (or, once `revive` workers are
    started, both done); `queue status` prints DVC 3's worker line."""

    def __init__(self, revive: bool):
        self.revive, self.workers, self.calls = revive, 0, []

    def __call__(self, *args: str) -> str:
        self.calls.append(args[:2])
        if args[:2] == ("queue", "start"):
            self.workers = int(args[-1]) if self.revive else 0
        if args[:2] == ("queue", "status"):
            return f"Task  Name  Created  Status\n\nWorker status: {self.workers} active, 0 idle\n"
        states = {"exp-x": "success", "exp-y": "success"} if self.workers else {"exp-x": "running", "exp-y": "queued"}
        return json.dumps([{"rev": "a" * 40, "name": "main", "data": {}, "experiments": [
            _experiment(name, state, 0.5, _stats(_variant(0.8, 0.7), _variant(0.6, 0.6)))
            for name, state in states.items()]}])


def test_a_queue_with_no_live_worker_is_restarted_once(monkeypatch):
    scripted = ScriptedQueue(revive=True)
    monkeypatch.setattr(sweep, "dvc", scripted)
    monkeypatch.setattr(sweep, "POLL_SECONDS", 0.0)
    shown = sweep.wait_for_queue(timeout=60, jobs=2)
    assert scripted.calls.count(("queue", "start")) == 1
    assert {name for name, _, _, _ in sweep._experiments(shown)} == {"exp-x", "exp-y"}


def test_a_queue_that_stays_dead_stops_the_sweep_naming_the_stuck_experiments(monkeypatch):
    scripted = ScriptedQueue(revive=False)
    monkeypatch.setattr(sweep, "dvc", scripted)
    monkeypatch.setattr(sweep, "POLL_SECONDS", 0.0)
    with pytest.raises(DroplabError, match="no DVC queue worker alive, after restarting the workers once: "
                                           "exp-x, exp-y"):
        sweep.wait_for_queue(timeout=60)
    assert scripted.calls.count(("queue", "start")) == 1
    assert scripted.calls.count(("exp", "show")) == 2 * sweep.STALLED_POLLS  # waits before acting, both times


def test_the_worker_count_is_read_from_real_dvc_queue_status(tmp_path: Path, monkeypatch):
    """DVC's own output in a repository with no worker started: the line the check parses."""
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    assert sweep.live_workers() == 0


def test_a_queue_status_without_a_worker_line_never_counts_as_dead(monkeypatch):
    """Another DVC version's output: the sweep cannot tell, so it waits (until its timeout)."""
    calls = []

    def dvc(*args: str) -> str:
        calls.append(args[:2])
        if args[:2] == ("queue", "status"):
            return "No experiment tasks in the queue.\n"
        return json.dumps([{"rev": "a" * 40, "name": "main", "data": {}, "experiments": [
            _experiment("exp-x", "queued", 0.5, None)]}])

    monkeypatch.setattr(sweep, "dvc", dvc)
    monkeypatch.setattr(sweep, "POLL_SECONDS", 0.0)
    with pytest.raises(DroplabError, match="did not finish within 0 s"):
        sweep.wait_for_queue(timeout=0)
    assert ("queue", "start") not in calls


# `dvc exp show --json` of DVC 3.67 (tests/dvc_output/exp_show_foreign.json) after, on one commit with
# dropout 0.5 and train.lr 0.001: `dvc exp run -S dropout=0.3 -S train.lr=0.01 -n other-lr`, then
# `-S dropout=0.3 -n sweep-a` and `-S dropout=0.2 -n sweep-b`
REAL_SHOWN = json.loads((Path(__file__).parent / "dvc_output" / "exp_show_foreign.json").read_text())


def _real_stats(rev: str) -> dict:
    """other-lr scores best: were it counted, it would be the sweep's best p."""
    val = 0.9 if rev.startswith("6e4a3d2b") else 0.6
    return _stats(_variant(val, val), _variant(val, val))


def test_the_report_keeps_only_the_sweeps_own_experiments():
    """Issue 26, case 2: an experiment that also changed the learning rate is not a point of the sweep."""
    frame = sweep.collect(REAL_SHOWN, ["s2_cnn"], _real_stats)
    assert list(frame["experiment"]) == ["sweep-b", "sweep-a"] and list(frame["p"]) == [0.2, 0.3]


def test_two_experiments_at_one_rate_are_refused_whatever_dvc_lists_first():
    twice = json.loads(json.dumps(REAL_SHOWN))
    other = twice[1]["experiments"][2]["revs"][0]
    other["data"]["params"]["params.yaml"]["data"]["train"]["lr"] = 0.001  # now as sweep-a: dropout 0.3 only
    for order in (twice[1]["experiments"], twice[1]["experiments"][::-1]):
        twice[1]["experiments"] = order
        with pytest.raises(DroplabError, match=r"both ran the sweep's dropout=0.3 on one commit; remove one"):
            sweep.collect(twice, ["s2_cnn"], _real_stats)


def test_rates_are_queued_exactly(monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "dvc", lambda *args: calls.append(args) or "")
    sweep.queue([0.1, 0.1234567], jobs=1)
    assert calls[0][-1] == "dropout=0.1,0.1234567"


def test_rates_this_commit_already_swept_are_refused_before_anything_is_queued(monkeypatch, tmp_path: Path):
    calls = []

    def dvc(*args: str) -> str:
        calls.append(args[:2])
        return json.dumps(REAL_SHOWN)

    monkeypatch.setattr(sweep, "dvc", dvc)
    with pytest.raises(DroplabError, match=r"already has sweep experiments at these rates: sweep-a \(dropout=0.3\); "
                                           "report them with --report-only"):
        sweep.run_sweep([0.3, 0.5], 1, "s2_cnn", tmp_path)
    assert calls == [("exp", "show")]  # other-lr, at 0.3 too, is not the sweep's
