"""The report's tables and the lines around them: every variant's numbers (columns from
droplab.metric_table), each study's setting, regime and sweep, the claims and the BN check."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from droplab.config import Params, Run, Study
from droplab.metric_table import COMPARED, METRICS, report_columns
from droplab.models.resnet_spec import PUBLISHED_CHANNELS
from droplab.records import load_result
from droplab.results.figures import sweep_figure
from droplab.results.regimes import AT_FLOOR
from droplab.results.verdict_words import DECIDED, INCONCLUSIVE, verdict_word
from droplab.run_files import RunFiles

PROFILE_COLUMNS = ["params", "flops"]
CLAIM_COLUMNS = ["id", "study", "expect", "observed", "difference", "P(A>B)", "p (Holm)", "verdict"]


def half_width(stat: dict | None) -> float | None:
    """Half the 95% interval of a stats.json summary; None with one seed (or no summary)."""
    return None if stat is None or stat["ci_high"] is None else (stat["ci_high"] - stat["ci_low"]) / 2


def _variant_of(label: str, runs: dict[str, list[Run]]) -> str:
    return runs[label][0].variant if label in runs else label


def summary_table(params: Params, labels: list[str], stats: dict, metrics_dir: Path) -> pd.DataFrame:
    """One row per label: test metrics, parameters and FLOPs, and the BN measures over seeds;
    a variant not trained at this scale keeps its profile and "-" elsewhere."""
    runs = params.label_runs()
    below = {label: seeds for study in stats["regimes"].values() for label, seeds in study["below_floor"].items()}
    rows = []
    for label in labels:
        profile = json.loads((metrics_dir / "profile" / f"{_variant_of(label, runs)}.json").read_text())
        row: dict = {"variant": label, "params": profile["params"], "flops": profile["flops"]}
        measured = stats["variants"].get(label)
        if measured is not None:
            row.update({"seeds": measured[COMPARED]["n"], "below_floor": len(below.get(label, []))})
            for metric in METRICS.values():
                if metric.column:
                    stat = measured.get(metric.key)
                    row[metric.column] = stat["mean"] if stat else None
                if metric.ci_column:
                    row[metric.ci_column] = half_width(measured.get(metric.key))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["variant", "seeds", "below_floor", *report_columns(mechanism=False),
                                        *PROFILE_COLUMNS, *report_columns(mechanism=True)])
    return frame.astype({"seeds": "Int64", "below_floor": "Int64"})  # counts, "-" where not trained


def _width_note(params: Params, variants: list[str]) -> list[str]:
    """A narrowed ResNet or CNN, named beside its published width."""
    lines = []
    for variant in variants:
        spec, published = params.spec(variant), params.variants[variant]
        if spec.model == "resnet" and spec.narrowed():  # type: ignore[union-attr]
            lines.append(f"ResNets trained with stages of {spec.channels} channels (published: "  # type: ignore[union-attr]
                         f"{PUBLISHED_CHANNELS}) behind the published 64-channel stem; input resized to "
                         f"{spec.resize or 'its native'} px.")  # type: ignore[union-attr]
            break
        if spec.model == "cnn" and spec.channels != published.channels:  # type: ignore[union-attr]
            lines.append(f"CNNs trained at channels {spec.channels} (published: {published.channels}).")  # type: ignore[union-attr]
            break
    return lines


def setting(params: Params, name: str, study: Study, metrics_dir: Path, dataset: str) -> list[str]:
    """What the study ran at: data, subsets, schedule, seeds; which variants trained elsewhere or not at all."""
    scale = study.scale(params.scale)
    own = [v for v in study.variants if params.home_study(v) == name and params.skipped_at_scale(v) is None]
    lines = []
    if own:
        cfg = params.resolve(own[0]).train
        sizes = load_result(RunFiles(metrics=metrics_dir).result(params.variant_runs(own[0])[0])).sizes
        schedule = cfg.schedule
        shape = {"cosine": "cosine to 0", "step": f"x{schedule.gamma:g} at epochs {schedule.milestones}",
                 "constant": "constant"}[schedule.name]
        published = f" (published on {scale.dataset})" if scale.dataset and scale.dataset != dataset else ""
        extras = f", momentum {cfg.momentum:g}" if cfg.optimizer == "sgd" else ""
        extras += f", weight decay {cfg.weight_decay:g}" if cfg.weight_decay else ""
        lines.append(f"Setting (scale `{params.scale}`): {dataset}{published}; {sizes['train']:,} train images "
                     f"(drawn anew for each seed) / {sizes['val']:,} val / {sizes['test']:,} test; {cfg.epochs} "
                     f"epoch(s) of batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}{extras}, {shape}"
                     f"{f' after {schedule.warmup_steps} warmup steps' if schedule.warmup_steps else ''}; "
                     f"seeds {', '.join(map(str, params.seeds_of(own[0])))}.")
    lines += _width_note(params, own)
    for variant in study.variants:
        home = params.home_study(variant)
        if (reason := params.skipped_at_scale(variant)) is not None:
            lines.append(f"`{variant}` is not trained at scale `{params.scale}`: {reason}.")
        elif home != name:
            lines.append(f"`{variant}` is trained at {home}'s setting (its first study), under "
                         f"{len(params.seeds_of(variant))} seeds.")
    return lines


def regime_lines(name: str, stats: dict) -> list[str]:
    """The study's regime measurements: its floor, the runs below it, each named variant's overfitting."""
    measured = stats["regimes"][name]
    floor = measured["floor"]
    if floor is None:
        lines = ["Regime: claims.yaml declares no trained floor for this study."]
    elif floor["value"] is None:
        lines = [f"Regime: no trained floor ({floor['source']})."]
    else:
        below = measured["below_floor"]
        runs = "; ".join(f"`{label}` seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"
                         for label, seeds in below.items())
        lines = [f"Regime. Trained floor {floor['value']:.4f} ({floor['source']}): "
                 + (f"{AT_FLOOR} it: {runs}." if below else "every run of the study beats it.")]
    for label, overfit in measured["overfitting"].items():
        lines.append(f"Overfitting of `{label}`: {'yes' if overfit['overfits'] else 'no'}: {overfit['text']}.")
    return [" ".join(lines)]


def sweep_lines(name: str, stats: dict, out_dir: Path) -> list[str]:
    """The selected rate, on which split and by what; every rate's validation metric (figure and
    table) and test top-1, which played no part in the choice."""
    sweep = stats["sweeps"].get(name)
    if sweep is None:
        return []
    rates = [int(tag.removeprefix("p")) / 100 for tag in sweep["rates"]]
    swept = list(sweep["labels"])
    series = {variant: [(stat["ci_low"] if stat["ci_low"] is not None else stat["mean"], stat["mean"],
                         stat["ci_high"] if stat["ci_high"] is not None else stat["mean"])
                        for stat in (by_variant[variant] for by_variant in sweep["rates"].values())]
              for variant in swept}
    sweep_figure(f"{name}: validation {sweep['metric'].removeprefix('val.')} against p\n(seed mean, 95% interval)",
                 rates, series, sweep["selected"], sweep["metric"],
                 out_dir / "studies" / f"{name}_sweep.png")
    rows = [{"p": rate, **{f"{variant} {sweep['metric']}": stat["mean"] for variant, stat in by_variant.items()},
             **{f"{variant} {COMPARED}": stats["variants"][f"{variant}_{tag}"][COMPARED]["mean"]
                for variant in swept}}
            for rate, (tag, by_variant) in zip(rates, sweep["rates"].items(), strict=True)]
    best = "lowest" if sweep["metric"].endswith("loss") else "highest"
    return [f"Dropout rate selected on the validation split: p = {sweep['selected']:g}, the {best} mean "
            f"{sweep['metric']} of `{sweep['select']}` over its seeds (test top-1 played no part); the study's "
            f"claims and tables read {', '.join(f'`{v}` as `{label}`' for v, label in sweep['labels'].items())}.",
            "", f"![{name} sweep](studies/{name}_sweep.png)", "", markdown_table(pd.DataFrame(rows)), ""]


def markdown_table(frame: pd.DataFrame) -> str:
    """A table with "-" where a value does not exist (an interval of one seed, BN figures without BN)."""
    cells = frame.astype(object).where(frame.notna(), None)
    return cells.to_markdown(index=False, floatfmt=".4f", intfmt=",", missingval="-")


def claim_row(claim: dict) -> dict:
    """A claim's row of the claims tables (the report's and the pull-request review's)."""
    p = claim["p_value"]
    holm = "-" if p is None else f"{p:.3g} ({claim['p_holm']:.3g})" if claim["p_holm"] is not None else f"{p:.3g}"
    return {"id": claim["id"], "study": claim["study"], "expect": claim["expect"], "observed": claim["observed"] or "-",
            "difference": claim["difference"] or "-", "P(A>B)": claim["superiority"] or "-", "p (Holm)": holm,
            "verdict": claim["verdict"]}


def claims_section(claims: list[dict], check: dict) -> list[str]:
    lines = []
    for title, mechanism in (("Published findings, judged on this run's seeds", False),
                             ("Mechanism claims (dropout's variance shift and BN recalibration)", True)):
        chosen = [claim for claim in claims if claim["mechanism"] == mechanism]
        decided = [claim for claim in chosen if verdict_word(claim["verdict"]) in DECIDED]
        tested = sum(claim["p_value"] is not None for claim in chosen)
        frame = pd.DataFrame([claim_row(claim) for claim in chosen], columns=CLAIM_COLUMNS)
        lines += [f"### {title}", "", f"{len(decided)} of {len(chosen)} decided; {tested} tested in their regime "
                  "(one Holm family).", "", frame.to_markdown(index=False) if len(frame) else "No claims.", ""]
        notes = [f"- `{claim['id']}`: " + "; ".join(f"{reading}: {verdict}"
                                                  for reading, verdict in claim["sensitivity"].items())
                 for claim in chosen if claim["sensitivity"]]
        notes += [f"- `{claim['id']}` undecided: {claim['power']}" for claim in chosen
                  if claim["power"] and verdict_word(claim["verdict"]) == INCONCLUSIVE]
        lines += (["Other readings of the decided claims, and what the undecided ones could have seen:", "", *notes, ""]
                  if notes else [])
    lines += ["### BN analysis check", "", check_line(check), ""]
    return lines


def check_line(check: dict) -> str:
    if not check["layers_checked"]:
        return ("Where dropout feeds BN directly, measured D must equal (v' + p c'^2) / ((1 - p) v): no trained "
                "variant of this run has dropout directly before a BN, so there was nothing to check.")
    if not check["passed"]:
        first = check["failures"][0]
        return (f"**ERROR: the BN analysis check FAILED** at {len(check['failures'])} of {check['layers_checked']} "
                f"layers (first: {first['run']}, {first['layer']}, gap {first['theory_gap']}): where dropout feeds BN "
                f"directly, measured D must equal (v' + p c'^2) / ((1 - p) v) within ±{check['tolerance']:g}. The "
                "variance-shift numbers of this run are not to be trusted.")
    return (f"Where dropout feeds BN directly, measured D against (v' + p c'^2) / ((1 - p) v) at "
            f"{check['layers_checked']} layers of the runs, tolerance ±{check['tolerance']:g}: passed (largest gap "
            f"{check['largest_gap']:.2g}).")
