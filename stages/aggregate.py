"""DVC stage `aggregate`: statistics over seeds, within-study comparisons and the claims' verdicts."""

from pathlib import Path

from droplab.results import aggregate
from droplab.stage_runner import run_stage


def main(params) -> None:
    stats = aggregate.main(params, Path("metrics"), Path("plots"), Path("report"), Path("claims.yaml"))
    for claim in stats["claims"]:
        print(f"{claim['id']}: {claim['verdict']}  ({claim['observed']})")


if __name__ == "__main__":
    run_stage("aggregate", main)
