"""DVC stage `download`: verified raw files of `dataset` into data/raw/<dataset>/."""

from pathlib import Path

from droplab.cli import run_stage
from droplab.datasets import DATASETS
from droplab.download import fetch_dataset


def main(params) -> None:
    used = fetch_dataset(DATASETS[params.dataset], Path("data/raw") / params.dataset, params.data.source_dir)
    for name, source in used.items():
        print(f"{name}: verified, from {source}")


if __name__ == "__main__":
    run_stage("download", main)
