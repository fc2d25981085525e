"""Which label stands for a variant: a swept variant is read at the rate its sweep selected on
validation, everything else under its own name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from droplab.config import Params, rate_tag
from droplab.metric_table import rounded_floats
from droplab.results.collect import SeriesByMetric
from droplab.results.stats import CONFIDENCE, summarize


def select_sweeps(params: Params, values: SeriesByMetric) -> dict[str, dict]:
    """Per sweeping study: every rate's seed mean of the selection metric for each swept variant,
    the selected rate (best mean of the `select` variant; the first on a tie), and each swept
    variant's label at it. Validation only: the test split plays no part in the choice."""
    sweeps = {}
    for name, study in params.studies.items():
        sweep = study.sweep
        if sweep is None:
            continue
        swept = [variant for variant in study.variants if params.sweep_rates(variant)]
        table = {rate_tag(rate): {variant: rounded_floats(asdict(summarize(values[label][sweep.metric], CONFIDENCE)))
                                  for variant in swept if (label := f"{variant}_{rate_tag(rate)}") in values}
                 for rate in sweep.rates}
        scored = [(table[rate_tag(rate)][sweep.select]["mean"], index, rate) for index, rate in enumerate(sweep.rates)
                  if sweep.select in table[rate_tag(rate)]]
        if not scored:
            continue
        best = (min(scored) if sweep.metric.endswith("loss") else max(scored, key=lambda s: (s[0], -s[1])))[2]
        sweeps[name] = {"metric": sweep.metric, "select": sweep.select, "selected": best, "rates": table,
                        "labels": {variant: f"{variant}_{rate_tag(best)}" for variant in swept}}
    return sweeps


def aliases(sweeps: Mapping[str, dict]) -> dict[str, str]:
    """A swept variant's name -> its selected rate's label: what claims and tables read it as."""
    return {variant: label for sweep in sweeps.values() for variant, label in sweep["labels"].items()}


def study_labels(params: Params, study: str, alias: Mapping[str, str], values: SeriesByMetric) -> list[str]:
    """The study's trained variants as labels, a swept one at its selected rate."""
    return [label for variant in params.studies[study].variants if (label := alias.get(variant, variant)) in values]
