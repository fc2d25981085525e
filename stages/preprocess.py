"""DVC stage `preprocess`: raw files -> data/prepared/{arrays.npz, meta.json}."""

from pathlib import Path

from droplab.data.prepare import prepare
from droplab.stage_runner import run_stage


def main(params) -> None:
    meta, notes = prepare(params.dataset_spec(), Path("data/raw") / params.dataset, Path("data/prepared"),
                          params.data.val_size, params.data.split_seed, params.data.train_limit,
                          params.data.test_limit)
    for note in notes:
        print(note)
    print(f"{meta.dataset}: {meta.sizes} images of shape {meta.input_shape}, {len(meta.classes)} classes")


if __name__ == "__main__":
    run_stage("preprocess", main)
