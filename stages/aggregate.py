"""DVC stage `aggregate`: statistics over seeds, within-study comparisons and the claims' verdicts."""

from pathlib import Path

from droplab.cli import run_stage
from droplab.data.prepare import load_meta
from droplab.results import aggregate


def main(params) -> None:
    classes = len(load_meta(Path("data/prepared"))["classes"])
    stats = aggregate.main(params, Path("metrics"), Path("plots"), Path("report"), Path("claims.yaml"), classes)
    for claim in stats["claims"]:
        print(f"{claim['id']}: {claim['verdict']}  ({claim['numbers']})")


if __name__ == "__main__":
    run_stage("aggregate", main)
