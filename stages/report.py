"""DVC stage `report`: report/summary.md and learning-curve PNGs for every variant."""

from pathlib import Path

from droplab.cli import run_stage
from droplab.report import build_report


def main(params) -> None:
    table = build_report(list(params.variants), Path("metrics"), Path("plots"), Path("report"))
    print(table.to_string(index=False))


if __name__ == "__main__":
    run_stage("report", main)
