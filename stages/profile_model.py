"""DVC stage `profile@<variant>` (not named profile.py: that would shadow the stdlib module).

Writes metrics/profile/<variant>.json, and the module tree and fvcore's per-module FLOP table
as text under report/arch/, so an architecture change shows up in code review as a text diff.
"""

import json
from pathlib import Path

from droplab.atomic import write_json, write_text
from droplab.cli import run_stage, variant_arg
from droplab.models import create_model
from droplab.profile import profile_model


def main(params) -> None:
    variant = variant_arg(params)
    meta = json.loads(Path("data/prepared/meta.json").read_text())
    model = create_model(params.variants[variant], params.rates(variant), meta["input_shape"], len(meta["classes"]))
    summary, table = profile_model(model, meta["input_shape"])
    write_text(Path("report/arch") / f"{variant}.txt", f"{model}\n")
    write_text(Path("report/arch") / f"{variant}.flops.txt", f"{table}\n")
    write_json(Path("metrics/profile") / f"{variant}.json", summary)


if __name__ == "__main__":
    run_stage("profile", main)
