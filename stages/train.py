"""DVC stage `train@<variant>-seed<seed>`: train one run and write its metrics, curves and model.

Each epoch is checkpointed under checkpoints/ (not a DVC output, so a rerun does not delete it):
a killed stage resumes from there on the next `dvc repro`. With `train.nproc_per_node > 1` the
stage re-executes itself under torchrun (data-parallel).
"""

from pathlib import Path

from droplab import distributed, train
from droplab.cli import run_arg, run_stage


def main(params) -> None:
    run = run_arg(params)
    distributed.relaunch_under_torchrun(params.train_config(run.variant).nproc_per_node)
    train.main(params, run, Path("data/prepared"), Path("models"), Path("metrics"), Path("plots"), Path("checkpoints"))


if __name__ == "__main__":
    run_stage("train", main)
