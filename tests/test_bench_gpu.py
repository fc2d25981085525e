"""`python -m bench --gpu`: refused plainly without a GPU, and its code runs end to end on the CPU."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_gpu_check_says_plainly_that_it_needs_a_gpu():
    done = subprocess.run([sys.executable, "-m", "bench", "--gpu"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0
    assert "this machine has no CUDA GPU" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_gpu_checks_code_runs_on_the_cpu_and_reports_every_check(tmp_path: Path):
    out = tmp_path / "gpu.md"
    done = subprocess.run([sys.executable, "-m", "bench", "--gpu", "--quick", "--device", "cpu", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|")[1:5] for line in out.read_text().splitlines() if line.startswith("| ")][1:]
    table = {(check.strip(), case.strip()): result.strip() for check, case, result, _ in rows}
    for variant in ("resnet18_avg", "s1_resnet18_after_bn", "s1_resnet18_before_bn", "s3_resnet50_avg"):
        assert table[("throughput", variant)].endswith(" img/s")
    assert table[("host syncs per epoch", "resnet18_avg, augmentation on")] == "n/a"  # CUDA counts them
    assert table[("deterministic max head", "s3_resnet18_max")] == "trains"
    assert table[("loss agreement", "bf16 False, channels_last False")] == "reference"
    assert {table[("loss agreement", f"bf16 {amp}, channels_last {cl}")]
            for amp, cl in ((True, False), (False, True), (True, True))} <= {"agrees", "DIFFERS"}
    assert table[("two fresh processes", "s1_resnet18_before_bn")] == "identical"
