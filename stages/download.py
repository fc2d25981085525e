"""DVC stage `download`: verified raw files of `dataset` into data/raw/<dataset>/."""

from pathlib import Path

from droplab.data.download import fetch_dataset
from droplab.stage_runner import run_stage


def main(params) -> None:
    fetched = fetch_dataset(params.dataset_spec(), Path("data/raw") / params.dataset, params.data.source_dir)
    for name, how in fetched.items():
        print(f"{name}: verified, from {how.source}: {how.account}\n  sha256 {how.sha256}")


if __name__ == "__main__":
    run_stage("download", main)
