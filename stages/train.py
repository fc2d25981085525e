"""DVC stage `train@<variant>`: train the variant under each of its seeds, in one process, and
write each seed's model, metrics, curves and BN analysis.

Each epoch is checkpointed under checkpoints/ (not a DVC output, so a rerun does not delete it):
a killed stage resumes from there on the next `dvc repro`, and seeds it had finished are not
retrained. With `train.nproc_per_node > 1` the stage re-executes itself under torchrun. On a
machine with several GPUs the stage first claims GPUs no other droplab job holds (gpu_pool).
"""

from pathlib import Path

from droplab.analysis import analyze
from droplab.dvc_yaml import read_variant_config
from droplab.records import BnReport
from droplab.stage_runner import run_stage, variant_seeds_arg
from droplab.training import distributed, gpu_pool, train


def main(params) -> None:
    variant, seeds = variant_seeds_arg(params)
    # what DVC records for this stage: data/configs/<variant>.json, refused if params.yaml now says otherwise
    recorded = read_variant_config(params, variant)
    cfg = recorded.runs[0].train
    gpu_pool.claim_for_job(cfg.nproc_per_node)  # before any CUDA work: parallel jobs each get their own GPUs
    distributed.relaunch_under_torchrun(cfg.nproc_per_node, [config.train.batch_size for config in recorded.runs])

    def measure(model, splits, ctx, seed: int, test: dict) -> BnReport:
        return analyze.analyze_run(model, splits, ctx.transform, ctx, recorded.analysis.train_images,
                                   cfg.eval_batch_size, seed, test)

    with distributed.process_group():  # one group for every rate: torchrun's store starts a group once
        for config in recorded.runs:  # a swept variant trains at each of its study's rates
            train.main(config, seeds, Path("data/prepared"), Path("models"),
                       Path("metrics"), Path("plots"), Path("checkpoints"), measure)


if __name__ == "__main__":
    run_stage("train", main, records_params=False)  # params reach it through data/configs
