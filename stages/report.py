"""DVC stage `report`: report/summary.md and one figure per study."""

from pathlib import Path

from droplab.cli import run_stage
from droplab.report import build_report


def main(params) -> None:
    table = build_report(params, Path("metrics"), Path("plots"), Path("report"))
    print(table.to_string(index=False))


if __name__ == "__main__":
    run_stage("report", main)
