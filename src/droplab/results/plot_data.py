"""The git-tracked plot data behind dvc.yaml's top-level plots: per study, every variant's
learning curves as a seed mean with a 95% band, its test top-1 with its interval, and one row
per claim step with its paired difference. Small TSVs written by the aggregate stage (`cache:
false`), so `dvc plots show` and `dvc plots diff <rev>` work in a clone with no DVC cache."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from droplab.records import DECIMALS
from droplab.results.stats import summarize
from droplab.results.verdict_words import verdict_word
from droplab.run_files import CURVES

__all__ = ["CURVES", "accuracy_tsv", "claims_tsv", "curves_tsv"]
CURVE_SPLITS = ("train", "val")
CURVE_HEADER = "variant\tsplit\tepoch\tmean\tlow\thigh\tseeds"
TEST_HEADER = "variant\ttest_acc1\tlow\thigh\tseeds"
CLAIMS_HEADER = "claim\tdifference\tlow\thigh\tverdict\tregime"


def _fixed(value: float) -> str:
    """A number as every droplab file writes it: DECIMALS places."""
    return f"{value:.{DECIMALS}f}"


def _interval(values: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """Mean and t-interval over seeds; one seed's interval is its value (no band, not a gap)."""
    stat = summarize(values, confidence)
    return stat.mean, stat.mean if stat.ci_low is None else stat.ci_low, stat.mean if stat.ci_high is None else \
        stat.ci_high


def curves_tsv(labels: Sequence[str], histories: Mapping[str, list[list[dict]]], metric: str,
               confidence: float) -> str:
    """One row per (variant, split, epoch): the mean of `metric` over seeds and its band. Every
    seed of a variant trains the same epochs, so epoch k is averaged over all of them."""
    lines = [CURVE_HEADER]
    for label in labels:
        seeds = histories[label]
        for split in CURVE_SPLITS:
            for index, row in enumerate(seeds[0]):
                mean, low, high = _interval([history[index][f"{split}_{metric}"] for history in seeds], confidence)
                lines.append(f"{label}\t{split}\t{row['epoch']}\t{_fixed(mean)}\t{_fixed(low)}\t{_fixed(high)}\t"
                             f"{len(seeds)}")
    return "\n".join(lines) + "\n"


def accuracy_tsv(labels: Sequence[str], per_variant: Mapping[str, dict], metric: str) -> str:
    """One row per trained variant: the mean of `metric` (test top-1) and its interval."""
    lines = [TEST_HEADER]
    for label in labels:
        stat = per_variant[label][metric]
        low = stat["mean"] if stat["ci_low"] is None else stat["ci_low"]
        high = stat["mean"] if stat["ci_high"] is None else stat["ci_high"]
        lines.append(f"{label}\t{_fixed(stat['mean'])}\t{_fixed(low)}\t{_fixed(high)}\t{stat['n']}")
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return "" if value is None else _fixed(value)  # one seed has no interval: an empty cell, not a made-up one


def claims_tsv(claims: Sequence[dict]) -> str:
    """One row per step of every claim (a chain a > b > c has two), with its paired difference and
    interval; a claim that was not tested has one row with its verdict and no numbers."""
    lines = [CLAIMS_HEADER]
    for claim in claims:
        verdict, regime = verdict_word(claim["verdict"]), "reached" if claim["regime"] == "reached" else "not reached"
        if not claim["steps"]:
            lines.append(f"{claim['id']}\t\t\t\t{verdict}\t{regime}")
        for step in claim["steps"]:
            name = claim["id"] if len(claim["steps"]) == 1 else f"{claim['id']}: {step['where']}"
            numbers = "\t".join(_cell(step[key]) for key in ("difference", "ci_low", "ci_high"))
            lines.append(f"{name}\t{numbers}\t{verdict}\t{regime}")
    return "\n".join(lines) + "\n"
