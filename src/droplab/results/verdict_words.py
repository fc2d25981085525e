"""The words a verdict is made of, in one place that imports nothing: the report and the
validate stage name verdicts without loading the statistics (scipy, statsmodels) that decide
them, about a second of every such stage's start."""

from __future__ import annotations

CONFIRMED = "confirmed"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run"
DECIDED = (CONFIRMED, CONTRADICTED)
UNTESTABLE = "not testable"  # a verdict's word, without its reason
NOT_TESTABLE = f"{UNTESTABLE} at this scale"
VERDICT_WORDS = (CONFIRMED, CONTRADICTED, INCONCLUSIVE, UNTESTABLE, NOT_RUN)  # summary.json counts each


def not_testable(why: str) -> str:
    return f"{NOT_TESTABLE}: {why}"


def verdict_word(verdict: str) -> str:
    """The verdict without its reason: confirmed, contradicted, inconclusive, not testable, not run."""
    for word in (UNTESTABLE, NOT_RUN):
        if verdict.startswith(word):
            return word
    return verdict.split(" ")[0].rstrip(":,")
