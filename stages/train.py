"""DVC stage `train@<variant>-seed<seed>`: train one run and write its metrics, curves and checkpoint."""

from pathlib import Path

from droplab import train
from droplab.cli import run_arg, run_stage


def main(params) -> None:
    train.main(params, run_arg(params), Path("data/prepared"), Path("models"), Path("metrics"), Path("plots"))


if __name__ == "__main__":
    run_stage("train", main)
