"""The S2 dropout sweep, the DVC way: one queued experiment per rate, run by the DVC queue,
then a report read back from `dvc exp show --json` and each experiment's report/stats.json.

The report plots validation loss and accuracy against p for each model (with the seed spread
as error bars where a variant has several seeds), picks the best p on validation accuracy, and
gives that p's test metrics; test metrics never choose p. Only the sweep's own experiments count:
those whose params equal their commit's in everything but `dropout` (sweep_rate).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from droplab.atomic import write_json, write_text
from droplab.errors import DroplabError
from droplab.pipeline.dvc_command import dvc
from droplab.results.figures import COLORS, save

STATS = "report/stats.json"
POLL_SECONDS = 5.0
WORKER_STATUS = re.compile(r"Worker status: (\d+) active, (\d+) idle")
# polls in a row that see experiments queued, none running and no worker alive before the sweep
# acts: a worker that `dvc queue start` just launched takes a moment to register
STALLED_POLLS = 3
COLUMNS = ["variant", "p", "experiment", "seeds", "val_acc1", "val_acc1_sd", "val_loss", "val_loss_sd",
           "test_acc1", "test_acc1_sd", "test_loss"]


def queue(rates: list[float], jobs: int) -> None:
    """Queue one experiment per rate (DVC's own grid syntax) and start `jobs` queue workers. Each
    rate is written as Python's shortest exact repr: `:g` would round 0.1234567 to 0.123457."""
    dvc("exp", "run", "--queue", "-S", "dropout=" + ",".join(repr(rate) for rate in rates))
    dvc("queue", "start", "-j", str(jobs))


def _experiments(shown: list[dict]) -> Iterator[tuple[str, str, str, dict]]:
    """(name, commit, executor state, data) of every experiment in `dvc exp show --json` output."""
    for name, rev, state, data, _ in _experiments_on_baselines(shown):
        yield name, rev, state, data


def _experiments_on_baselines(shown: list[dict]) -> Iterator[tuple[str, str, str, dict, dict]]:
    """As _experiments, each with its baseline commit's params (`dvc exp show` lists them there)."""
    for commit in shown:
        baseline = (commit.get("data") or {}).get("params") or {}
        for group in commit.get("experiments") or []:
            state = (group.get("executor") or {}).get("state", "success")
            for rev in group.get("revs") or []:
                yield rev.get("name") or rev["rev"][:7], rev["rev"], state, rev.get("data") or {}, baseline


def sweep_rate(params: dict, baseline: dict) -> float | None:
    """The rate of an experiment the sweep could have queued: its params (every params file, as
    `dvc exp show` lists them) equal its baseline commit's in everything but `dropout`; None for
    any other experiment (one that also changed the learning rate is not a point of this sweep)."""
    data = (params.get("params.yaml") or {}).get("data")
    base = (baseline.get("params.yaml") or {}).get("data")
    if not isinstance(data, dict) or not isinstance(base, dict) or "dropout" not in data:
        return None
    others = {name: entry for name, entry in params.items() if name != "params.yaml"}
    base_others = {name: entry for name, entry in baseline.items() if name != "params.yaml"}
    same = others == base_others and {k: v for k, v in data.items() if k != "dropout"} == \
        {k: v for k, v in base.items() if k != "dropout"}
    return data["dropout"] if same else None


def stats_at(rev: str) -> dict | None:
    """An experiment's report/stats.json from its git commit: git keeps it (the DVC metrics file
    holds only the headline), so no DVC cache is needed."""
    done = subprocess.run(["git", "show", f"{rev}:{STATS}"], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def _point(stats: dict, variant: str) -> dict | None:
    """A variant's seed means and SDs in one experiment's statistics (a swept one at its selected rate)."""
    labels = {name: label for sweep in stats.get("sweeps", {}).values() for name, label in sweep["labels"].items()}
    metrics = stats["variants"].get(labels.get(variant, variant))
    if metrics is None:
        return None
    point = {"seeds": metrics["test.acc1"]["n"]}
    for key in ("val_acc1", "val_loss", "test_acc1", "test_loss"):
        stat = metrics[key.replace("_", ".")]
        point[key] = stat["mean"]
        if f"{key}_sd" in COLUMNS:
            point[f"{key}_sd"] = stat["sd"]
    return point


def live_workers() -> int | None:
    """How many DVC queue workers are alive (active or idle), from `dvc queue status`; None when
    it prints no worker line (another DVC version): then the sweep cannot tell, and waits.

    The text is parsed because DVC 3.67 offers nothing machine-readable for workers: `dvc queue
    status` has no --json, dvc.api has no queue call, and the only structured source,
    `Repo.experiments.celery_queue.worker_status()`, is DVC's internal Celery API (the kind of
    private hook that breaks silently on an upgrade). The worker line is printed from that same
    call; tests/test_sweep.py parses DVC's real output, so a changed line fails a test."""
    match = WORKER_STATUS.search(dvc("queue", "status"))
    return None if match is None else int(match[1]) + int(match[2])


def wait_for_queue(timeout: float, jobs: int = 1) -> list[dict]:
    """Poll until no experiment is queued or running; fail naming any experiment that failed.

    A DVC queue can be left with experiments queued or running and no worker alive (a worker
    killed or crashed mid-experiment, the machine slept): it would wait forever. Seeing that on
    STALLED_POLLS polls in a row, the sweep restarts `jobs` workers once; if they stall too, it
    stops and names the stuck experiments."""
    deadline = time.monotonic() + timeout
    stalled, restarted = 0, False
    while True:
        shown = json.loads(dvc("exp", "show", "--json"))
        states = {name: state for name, _, state, _ in _experiments(shown)}
        if not any(state in ("queued", "running") for state in states.values()):
            failed = sorted(name for name, state in states.items() if state == "failed")
            if failed:
                raise DroplabError(f"experiments failed: {', '.join(failed)}; see `dvc queue logs <name>`")
            return shown
        stuck = sorted(name for name, state in states.items() if state in ("queued", "running"))
        stalled = stalled + 1 if live_workers() == 0 else 0
        if stalled >= STALLED_POLLS:
            if restarted:
                raise DroplabError(f"experiments still queued or running with no DVC queue worker alive, after "
                                   f"restarting the workers once: {', '.join(stuck)}; see `dvc queue status` and "
                                   "`dvc queue logs <name>`, then `dvc queue start` or `dvc exp remove --queue`")
            print(f"droplab sweep: {len(stuck)} experiment(s) waiting and no queue worker alive; restarting "
                  f"{jobs} worker(s)", flush=True)
            dvc("queue", "start", "-j", str(jobs))
            stalled, restarted = 0, True
        if time.monotonic() > deadline:
            raise DroplabError(f"the queue did not finish within {timeout:.0f} s; see `dvc queue status`")
        time.sleep(POLL_SECONDS)


def collect(shown: list[dict], variants: list[str], read_stats: Callable[[str], dict | None] | None = None
            ) -> pd.DataFrame:
    """One row per (variant, p) from the sweep's own successful experiments (those that differ from
    their baseline commit only in `dropout`) and their committed report/stats.json (`read_stats`
    reads it from an experiment's commit). Two of them at one rate are refused: which one DVC
    lists first is no reason to report it."""
    read_stats = read_stats or stats_at  # looked up at call time: the catalogue's tests replace it
    rows, by_rate = [], {}
    for name, rev, state, data, baseline in _experiments_on_baselines(shown):
        rate = sweep_rate(data.get("params") or {}, baseline) if state == "success" else None
        stats = read_stats(rev) if rate is not None else None
        if stats is None:
            continue
        if rate in by_rate:
            raise DroplabError(f"experiments {by_rate[rate]} and {name} both ran the sweep's dropout={rate!r} on one "
                               f"commit; remove one (`dvc exp remove {name}`) and rerun --report-only")
        by_rate[rate] = name
        for variant in variants:
            if (point := _point(stats, variant)) is not None:
                rows.append({"variant": variant, "p": rate, "experiment": name, **point})
    if not rows:
        raise DroplabError(f"no finished experiment has {STATS} for {', '.join(variants)} among the sweep's own "
                           "(params as their commit's but for `dropout`); run `droplab sweep` (without "
                           "--report-only) first")
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    return frame.sort_values(["variant", "p"], ignore_index=True)


def best_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant, the p with the highest validation accuracy (the lowest p on ties), and its test metrics."""
    ranked = frame.sort_values(["variant", "val_acc1", "p"], ascending=[True, False, True])
    return ranked.groupby("variant", sort=True).head(1).reset_index(drop=True)


def figure(frame: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, (variant, rows) in enumerate(frame.groupby("variant", sort=True)):
        for ax, metric in zip(axes, ("val_loss", "val_acc1"), strict=True):
            spread = rows[f"{metric}_sd"].fillna(0.0)
            ax.errorbar(rows["p"], rows[metric], yerr=spread, marker="o", capsize=3,
                        color=COLORS[index % len(COLORS)], label=variant)
    for ax, label in zip(axes, ("validation cross-entropy loss", "validation top-1 accuracy"), strict=True):
        ax.set_xlabel("dropout rate p")
        ax.set_ylabel(label)
        ax.set_title(f"S2 dropout sweep: {label} against p (error bars: seed SD)")
        ax.grid(alpha=0.3)
    axes[1].legend()
    fig.tight_layout()
    save(fig, path)


def report(frame: pd.DataFrame, out_dir: Path) -> str:
    best = best_rates(frame)
    figure(frame, out_dir / "sweep.png")
    write_json(out_dir / "sweep.json", {"points": frame.to_dict(orient="records"),
                                        "best": best.to_dict(orient="records")})
    text = "\n".join([
        "# S2 dropout sweep", "",
        "Best p per model on validation top-1 accuracy, and that p's test metrics (mean over seeds):", "",
        best.to_markdown(index=False, floatfmt=".4f", missingval="-"), "",
        "![sweep](sweep.png)", "", "Every point:", "",
        frame.to_markdown(index=False, floatfmt=".4f", missingval="-"), ""])
    write_text(out_dir / "sweep.md", text)
    return text


def check_not_run(shown: list[dict], rates: list[float]) -> None:
    """Refuse, before queueing, rates that sweep experiments on this commit already ran (or are
    running): the report would refuse the pair only after every experiment had run."""
    clash = sorted(f"{name} (dropout={rate!r})" for name, _, state, data, baseline in _experiments_on_baselines(shown)
                   if state != "failed" and (rate := sweep_rate(data.get("params") or {}, baseline)) in rates)
    if clash:
        raise DroplabError(f"this commit already has sweep experiments at these rates: {', '.join(clash)}; report "
                           "them with --report-only, or remove them (`dvc exp remove <name>`) and sweep again")


def run_sweep(rates: list[float], jobs: int, variants: str, out_dir: Path, queue_first: bool = True,
              timeout: float = 24 * 3600) -> str:
    if queue_first:
        check_not_run(json.loads(dvc("exp", "show", "--json")), rates)
        queue(rates, jobs)
    shown = wait_for_queue(timeout, jobs)
    frame = collect(shown, [name.strip() for name in variants.split(",") if name.strip()])
    return report(frame, out_dir)
