"""DVC stage `report`: report/summary.md, one figure per study and one BN figure per variant."""

from pathlib import Path

from droplab.records import load_meta
from droplab.results.report import build_report
from droplab.stage_runner import run_stage


def main(params) -> None:
    meta = load_meta(Path("data/prepared"))
    table = build_report(params, Path("metrics"), Path("plots"), Path("models"), Path("report"), meta.dataset,
                         meta.classes)
    print(table.to_string(index=False))


if __name__ == "__main__":
    run_stage("report", main)
