"""DVC stage `profile` (not named profile.py: that would shadow the stdlib module).

For every variant, writes metrics/profile/<variant>.json, and the module tree and fvcore's
per-module FLOP table as text under report/arch/, so an architecture change shows up in code
review as a text diff. One stage for all variants: counting takes well under a second per
model, far less than starting a stage, and every extra stage slows `dvc status`.
"""

from pathlib import Path

from droplab.analysis.profile import profile_model
from droplab.atomic import write_json, write_text
from droplab.models.registry import create_model_for
from droplab.records import load_meta
from droplab.stage_runner import run_stage


def main(params) -> None:
    meta = load_meta(Path("data/prepared"))
    for variant in params.variants:  # every variant, trained at this scale or not: S3 set cost beside accuracy
        config = params.resolve(variant)
        model = create_model_for(config.spec, config.rates, meta)
        summary, table = profile_model(model, meta.input_shape)
        write_text(Path("report/arch") / f"{variant}.txt", f"{model}\n")
        write_text(Path("report/arch") / f"{variant}.flops.txt", f"{table}\n")
        write_json(Path("metrics/profile") / f"{variant}.json", summary)


if __name__ == "__main__":
    run_stage("profile", main)
