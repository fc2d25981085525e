"""DVC stage `preprocess`: raw files -> data/prepared/{arrays.npz, meta.json}."""

from pathlib import Path

from droplab.cli import run_stage
from droplab.datasets import DATASETS
from droplab.prepare import prepare


def main(params) -> None:
    meta = prepare(DATASETS[params.dataset], Path("data/raw") / params.dataset, Path("data/prepared"),
                   params.data.val_size, params.data.split_seed, params.data.train_limit, params.data.test_limit)
    print(f"{meta['dataset']}: {meta['sizes']} images of shape {meta['input_shape']}")


if __name__ == "__main__":
    run_stage("preprocess", main)
