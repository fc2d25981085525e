"""The git-tracked plot data: seed-mean curves with their bands, checked against scipy."""

import random
import statistics

import pytest
import scipy.stats as sps

from droplab.results.plot_data import CURVE_HEADER, claims_tsv, curves_tsv
from droplab.results.verdict_words import verdict_word


def _histories(seeds: int, epochs: int, rng: random.Random) -> list[list[dict]]:
    return [[{"epoch": epoch, "train_loss": rng.random(), "val_loss": rng.random(), "train_acc1": rng.random(),
              "val_acc1": rng.random()} for epoch in range(1, epochs + 1)] for _ in range(seeds)]


def test_every_epoch_is_the_seed_mean_with_a_t_band():
    rng = random.Random(0)
    histories = {"a": _histories(3, 4, rng), "b": _histories(1, 2, rng)}
    rows = [line.split("\t") for line in curves_tsv(["a", "b"], histories, "loss", 0.95).splitlines()]
    assert "\t".join(rows[0]) == CURVE_HEADER
    assert len(rows) == 1 + 2 * 4 + 2 * 2  # (variant, split, epoch) each once
    by_key = {(row[0], row[1], int(row[2])): [float(v) for v in row[3:6]] + [int(row[6])] for row in rows[1:]}
    for split in ("train", "val"):
        for epoch in range(1, 5):
            values = [history[epoch - 1][f"{split}_loss"] for history in histories["a"]]
            low, high = sps.t.interval(0.95, 2, loc=statistics.fmean(values), scale=sps.sem(values))
            assert by_key[("a", split, epoch)] == pytest.approx([statistics.fmean(values), low, high, 3], abs=1e-6)
        only = histories["b"][0][0][f"{split}_loss"]
        assert by_key[("b", split, 1)] == pytest.approx([only, only, only, 1], abs=1e-6)  # one seed: no band


def test_a_chain_claim_has_a_row_per_step_and_an_untested_one_a_row_without_numbers():
    step = {"where": "a - b", "difference": 0.01, "ci_low": -0.002, "ci_high": 0.022}
    claims = [{"id": "chain", "verdict": "inconclusive", "regime": "reached",
               "steps": [step, {**step, "where": "b - c", "ci_low": None, "ci_high": None}]},
              {"id": "skipped", "verdict": "not testable at this scale: not trained", "regime": "not trained",
               "steps": []}]
    assert claims_tsv(claims).splitlines()[1:] == [
        "chain: a - b\t0.010000\t-0.002000\t0.022000\tinconclusive\treached",
        "chain: b - c\t0.010000\t\t\tinconclusive\treached",
        "skipped\t\t\t\tnot testable\tnot reached"]


@pytest.mark.parametrize(("verdict", "word"), [("confirmed", "confirmed"), ("contradicted", "contradicted"),
                                               ("not testable at this scale: x", "not testable"),
                                               ("not run", "not run"), ("inconclusive", "inconclusive")])
def test_verdict_words(verdict: str, word: str):
    assert verdict_word(verdict) == word
