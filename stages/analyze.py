"""DVC stage `analyze@<variant>`: BN gamma/beta, variance shift and BN recalibration of a trained variant."""

from pathlib import Path

from droplab import analyze
from droplab.cli import run_stage, variant_arg


def main(params) -> None:
    variant = variant_arg(params)
    result = analyze.main(params, variant, Path("data/prepared"), Path("models"), Path("metrics"),
                          Path("report"))
    print(f"{variant}: {result['bn_layers']} BN layers, variance shift {result['variance_shift_mean']}, "
          f"recalibration {result['recalibration']}")


if __name__ == "__main__":
    run_stage("analyze", main)
