"""DVC stage `train@<variant>`: train one variant and write its metrics, curves and checkpoint."""

from pathlib import Path

from droplab import train
from droplab.cli import run_stage, variant_arg


def main(params) -> None:
    variant = variant_arg(params)
    train.main(params, variant, Path("data/prepared"), Path("models") / f"{variant}.pt", Path("metrics"), Path("plots"))


if __name__ == "__main__":
    run_stage("train", main)
