"""DVC stage `validate`: params.yaml, dvc.yaml's runs block and claims.yaml, checked before any
stage touches an output.

DVC deletes a stage's outputs just before it runs the stage, so a bad value found by the train
stage itself (`dvc exp run -S dropout=abc`) would already have cost the run's earlier results.
Every other stage depends on this stage's marker, so DVC runs this one first and stops here.
The marker's text never changes (and is `persist`ed), so a passing check reruns nothing.

It also writes each trained variant's resolved config, data/configs/<variant>.json, the one
dependency of its train stage on params.yaml (dvc_yaml.variant_config).
"""

from pathlib import Path

from droplab.atomic import write_text
from droplab.dvc_yaml import write_configs
from droplab.results.claims import check_claim_variants, load_claims
from droplab.stage_runner import check_params_unchanged, run_stage

CLAIMS = Path("claims.yaml")
MARKER = Path("data/params.checked")
MARKER_TEXT = "params.yaml, the runs block of dvc.yaml and claims.yaml passed droplab's checks\n"


def main(params) -> None:
    check_claim_variants(load_claims(CLAIMS), params, CLAIMS)
    check_params_unchanged(params, "validate")  # before writing: the outputs hold the params DVC records for this run
    write_configs(params)
    if not MARKER.exists() or MARKER.read_text() != MARKER_TEXT:
        write_text(MARKER, MARKER_TEXT)
    print(f"params.yaml: {len(params.variants)} variants, {len(params.runs())} runs; claims.yaml: valid")


if __name__ == "__main__":
    run_stage("validate", main)
