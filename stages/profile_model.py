"""DVC stage `profile@<variant>` (not named profile.py: that would shadow the stdlib module)."""

import json
from pathlib import Path

from droplab.atomic import write_json
from droplab.cli import run_stage, variant_arg
from droplab.models import create_model
from droplab.profile import profile_model


def main(params) -> None:
    variant = variant_arg(params)
    meta = json.loads(Path("data/prepared/meta.json").read_text())
    model = create_model(params.variants[variant], params.rates(variant), meta["input_shape"], len(meta["classes"]))
    write_json(Path("metrics/profile") / f"{variant}.json", profile_model(model, meta["input_shape"]))


if __name__ == "__main__":
    run_stage("profile", main)
