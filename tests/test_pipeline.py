"""End to end: the real dvc.yaml on the real Fashion-MNIST, shrunk to a few hundred images, and
once more on a synthetic CIFAR-10 downloaded from a local HTTP server.

Runs in a copy of the repository in a temporary directory, as a user's clone would. Each run
keeps a handful of variants, one or more per model family, so the suite stays fast. The clone most
tests share is the copy `droplab try --variants ... --keep` leaves, run from a user's clone.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import scipy.stats
import yaml

from droplab import kernel_pins
from droplab.config import load_params
from droplab.pipeline import tryout
from droplab.pipeline.tiny import shrink
from droplab.results.verdict_words import DECIDED, INCONCLUSIVE, NOT_TESTABLE, verdict_word
from droplab.run_files import CONFUSION
from test_tryout import file_digests

from conftest import REPO
from http_server import serve
from synthetic import CIFAR10_CLASSES, cifar10_arrays, write_cifar10_tar

pytestmark = pytest.mark.slow
# Under pytest-xdist (`make test`), the tests that share a clone run on one worker, and the clone is
# session-scoped, so it is built once even when the worker runs other modules' tests in between.
ON_CLONE = pytest.mark.xdist_group("fashion_clone")
ON_SMALL_CLONE = pytest.mark.xdist_group("small_clone")

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
GIT_IDENTITY = {f"GIT_{role}_{field}": value for role in ("AUTHOR", "COMMITTER")
                for field, value in (("NAME", "droplab test"), ("EMAIL", "test@droplab.invalid"))}


def require_fashion_mnist() -> None:
    """Skip an end-to-end test without the real data; under CI, which must run it, fail instead."""
    if FASHION_MNIST.is_dir() or os.environ.get("DROPLAB_DATA_DIR"):
        return
    message = "Fashion-MNIST is not installed (make data) and DROPLAB_DATA_DIR is not set"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def attempt(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`args` with the venv's tools first on PATH; stderr interleaved into stdout, as a terminal shows it."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **GIT_IDENTITY}
    return subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **GIT_IDENTITY}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def snapshot(root: Path, folder: str) -> dict[str, bytes]:
    """Every file under `folder` (or the file itself), by path relative to it; not the .gitignore
    files DVC writes beside its cached outputs."""
    base = root / folder
    files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file() and p.name != ".gitignore")
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in files}


# Followers of `dropout` and fixed-rate variants of every model family (the ResNet with a dropout
# head: S1's dropout-in-block ResNets are skipped at the cpu scale); unit tests cover the other
# placements and heads. With S2's ReLU-before-BN CNN and its linear floor, one claim has all its runs
# (s2-cnn-relu-before-bn-worse: both CNNs beat the floor within the one epoch).
FASHION_VARIANTS = ("s2_mlp", "s2_cnn", "s2_cnn_relu_before_bn", "s2_cnn_linear", "s4_mlp_p2_p5", "lenet_bn_dropout",
                    "s3_resnet18_dropout_head")
JUDGED_CLAIM = "s2-cnn-relu-before-bn-worse"
CIFAR_VARIANTS = ("s2_cnn", "lenet_bn_dropout", "s3_resnet18_dropout_head")


def copy_repo(root: Path, results: bool = False) -> Path:
    """The repository's files as git sees them (tracked, and untracked but not ignored: the working
    tree under test) in `root`, as `droplab try` copies them; its committed results too if `results`."""
    files = tryout.git_files(REPO) if results else tryout.tracked_files(REPO)
    for rel in files:
        if (REPO / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, root / rel)
    return root


def commit_all(root: Path, message: str) -> Path:
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", message], root)
    return root


def make_repo(root: Path, params: dict) -> Path:
    """Copy the repository without results to `root` and commit it with `params`."""
    copy_repo(root)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["droplab", "runs"], root)
    return commit_all(root, "clone")


def make_clone(root: Path, params: dict) -> Path:
    """`make_repo`, then `dvc repro` there."""
    run(["dvc", "repro"], make_repo(root, params))
    return root


@dataclass(frozen=True)
class Tried:
    """`droplab try`, run from `checkout` (a copy of the working tree with its results, committed, as in a
    user's clone), keeping its copy in `copy`."""
    checkout: Path
    before: dict[str, str]  # the checkout's files before the try
    output: str
    copy: Path


@pytest.fixture(scope="session")
def tried(tmp_path_factory) -> Tried:
    """`droplab try --variants FASHION_VARIANTS --keep DIR`: its kept copy is the clone the tests below share."""
    require_fashion_mnist()
    root = tmp_path_factory.mktemp("try")
    checkout = commit_all(copy_repo(root / "checkout", results=True), "a clone with results, as users have")
    before = file_digests(checkout)
    done = attempt([sys.executable, "-m", "droplab", "try", "--variants", ",".join(FASHION_VARIANTS),
                    "--keep", str(root / "copy")], checkout)
    assert done.returncode == 0, done.stdout[-3000:]
    return Tried(checkout, before, done.stdout, root / "copy")


@pytest.fixture(scope="session")
def clone(tried: Tried) -> Path:
    """The Fashion-MNIST clone of every model family: the copy `droplab try` kept, results and all."""
    return tried.copy


@ON_CLONE
def test_droplab_try_runs_the_pipeline_in_a_copy_and_leaves_the_checkout_byte_identical(tried: Tried):
    claims = yaml.safe_load((REPO / "claims.yaml").read_text())["claims"]
    assert "## Claims" in tried.output and all(claim["id"] in tried.output for claim in claims)  # the copy's, printed
    assert run(["git", "status", "--porcelain", "--ignored"], tried.checkout) == ""
    assert file_digests(tried.checkout) == tried.before


@ON_CLONE
def test_repro_writes_every_output(clone: Path):
    params = load_params(clone / "params.yaml")
    variants = list(params.variants)
    runs = params.runs()
    assert len(runs) > len(variants)  # the multi-seed studies train more than one run per variant
    fed_directly = 0  # BN layers that dropout feeds directly, where D has a closed form to check
    for run_ in runs.values():
        metrics = json.loads(run_.path(clone / "metrics/train", ".json").read_text())
        assert set(metrics) == {"best_epoch", "train", "val", "test", "sizes", "history"}
        assert [row["epoch"] for row in metrics["history"]] == list(range(1, len(metrics["history"]) + 1))
        assert metrics["sizes"] == {"train": 300, "val": 200, "test": 500}  # the tiny config's whole splits
        assert list(metrics["test"]["f1_per_class"]) == json.loads((clone / "data/prepared/meta.json").read_text())[
            "classes"]
        for split in ("train", "val", "test"):
            assert set(metrics[split]) - {"f1_per_class"} == {"loss", "acc1", "acc5", "f1_macro"}
            assert 0.0 <= metrics[split]["acc1"] <= metrics[split]["acc5"] <= 1.0
        # S2's models (Adam, lr 1e-3) beat chance (0.1) after one epoch on 300 images. S4 (SGD
        # from a N(0, 0.01) init) and S5 (lr 0.01, heavy dropout) need more steps than this.
        if run_.variant.startswith("s2_"):
            assert metrics["test"]["acc1"] > 0.3, run_
        speed = json.loads(run_.path(clone / "metrics/speed", ".json").read_text())
        assert speed["device"] in ("cpu", "cuda") and speed["images_per_sec"] > 0
        assert speed["platform"]["pinned"] == (UNPINNABLE is None), speed["platform"]
        live_dir = run_.path(clone / "plots/train", "")
        assert (live_dir / "plots/metrics/train/loss.tsv").read_text().splitlines()[0] == "step\tloss"
        assert json.loads((live_dir / "metrics.json").read_text())["step"] == len(
            (live_dir / "plots/metrics/lr.tsv").read_text().splitlines()) - 1  # the last epoch's step
        bn = json.loads(run_.path(clone / "metrics/bn", ".json").read_text())  # every seed is analyzed
        fed_directly += sum(layer["fed_by_dropout"] == "direct" for layer in bn["layers"].values())
        assert (bn["bn_layers"] > 0) == (bn["recalibration"] is not None)
        ratios = [layer["dropout_variance_ratio"] for layer in bn["layers"].values()]
        if not any(params.resolve(run_.variant, run_.rate).rates):
            assert all(ratio == 1.0 for ratio in ratios)  # no dropout: D is exactly 1
    summary_json = json.loads((clone / "metrics/summary.json").read_text())  # the headline only
    assert list(summary_json) == [*params.trained_variants(), "claims"]  # the swept MLP at its selected rate
    assert sum(summary_json["claims"].values()) == len(yaml.safe_load((clone / "claims.yaml").read_text())["claims"])
    for study, labels in json.loads((clone / "report/stats.json").read_text())["studies"].items():
        curves = (clone / f"plots/curves/{study}_loss.tsv").read_text().splitlines()
        assert {line.split("\t")[0] for line in curves[1:]} == set(labels)  # every trained variant's curves
    for name in variants:
        profile = json.loads((clone / f"metrics/profile/{name}.json").read_text())
        assert profile["params"] > 0 and profile["flops"] > 0 and profile["input_shape"] == [1, 28, 28]
    stats = json.loads((clone / "report/stats.json").read_text())
    assert {claim["id"] for claim in stats["claims"]} >= {"s4-orders-alike", "s1-after-bn-beats-before-bn"}
    assert stats["sweeps"]["s2_mlp"]["labels"]["s2_mlp"].startswith("s2_mlp_p")
    assert stats["checks"]["theory_gap"]["passed"] and stats["checks"]["theory_gap"]["layers_checked"] == fed_directly
    summary = (clone / "report/summary.md").read_text()
    assert all(name in summary for name in variants) and "## Claims" in summary and "Setting (scale `cpu`)" in summary
    meta = json.loads((clone / "data/prepared/meta.json").read_text())
    assert meta["sizes"] == {"train": 300, "val": 200, "test": 500}
    shown = [label for labels in stats["studies"].values() for label in labels]
    for label in shown:  # a BN figure for every variant with BN layers, none for the others
        has_bn = json.loads(params.label_runs()[label][0].path(clone / "metrics/bn", ".json").read_text())["bn_layers"]
        assert (clone / f"report/bn/{label}.png").exists() == bool(has_bn), label
    for name in variants:
        assert (clone / f"report/arch/{name}.txt").read_text().strip()
        assert "module" in (clone / f"report/arch/{name}.flops.txt").read_text()
    for study in params.studies:
        assert (clone / f"report/studies/{study}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"## {study}:" in summary
        rows = (clone / f"plots/test/{study}.tsv").read_text().splitlines()
        assert [row.split("\t")[0] for row in rows[1:]] == stats["studies"][study]


GOLDEN = REPO / "tests" / "golden" / "tiny"
BIT_EXACT = ("metrics/train", "metrics/profile", "metrics/bn", "plots/train")
UNPINNABLE = kernel_pins.why_not_pinnable()
# Where the pin cannot hold, the same code takes other kernels and, through Adam and BN, another
# trajectory. On the tiny config (300 images, one epoch) that moved epoch-1 train acc1 from 0.543
# to 0.440 and train loss from 1.385 to 1.656 between two CPUs before the pin (issue 12): the
# tolerances are that spread with a margin. They catch a broken metric, not a last-bit change.
ACC_TOLERANCE = 0.15  # absolute, for every accuracy and F1
LOSS_TOLERANCE = 0.30  # relative


def golden_differences(clone: Path) -> list[str]:
    """Paths under BIT_EXACT whose bytes differ between the clone and the golden files (or that
    only one side has). Compares in place: the clone's outputs are left as dvc repro wrote them."""
    differences = []
    for folder in BIT_EXACT:
        ours, golden = snapshot(clone, folder), snapshot(GOLDEN, folder)
        differences += [f"{folder}/{rel}" for rel in sorted(set(ours) | set(golden))
                        if ours.get(rel) != golden.get(rel)]
    return differences


@ON_CLONE
def test_results_reproduce_the_committed_golden_bytes(clone: Path, request):
    """A fresh clone's `dvc repro` on the tiny config gives the committed results byte for byte, on
    any machine where the kernel pin holds (x86-64 with AVX2 and FMA). `--update-golden` rewrites them."""
    if request.config.getoption("--update-golden"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for folder in BIT_EXACT:
            shutil.copytree(clone / folder, GOLDEN / folder, ignore=shutil.ignore_patterns(".gitignore"))
    if UNPINNABLE is not None:
        pytest.skip(f"byte-for-byte holds only where the CPU kernel pin holds, and here {UNPINNABLE}; "
                    "the tolerance and same-machine tests below still run")
    assert golden_differences(clone) == []


def _flat(values: object, prefix: str = "") -> dict[str, float]:
    if isinstance(values, list):  # the history: one row per epoch
        values = dict(enumerate(values))
    if not isinstance(values, dict):
        return {prefix: values}
    return {name: number for key, value in values.items() for name, number in _flat(value, f"{prefix}{key}.").items()}


def _numbers(rel: str, data: bytes) -> dict[str, float]:
    """Every number of a metrics JSON or curves TSV, by a name that says where it sits; of a
    confusion rows file, its row count (one per test image)."""
    if rel.endswith(".json"):
        return {name.rstrip("."): value for name, value in _flat(json.loads(data)).items()
                if not name.startswith("sizes.")}
    if rel.endswith(CONFUSION):
        return {"rows": len(data.decode().splitlines())}
    header, *rows = [line.split("\t") for line in data.decode().splitlines()]
    return {f"{row[0]}.{name}": float(value) for row in rows for name, value in zip(header[1:], row[1:], strict=True)}


@ON_CLONE
def test_results_are_within_tolerance_of_the_golden_values(clone: Path):
    """On every machine, pinned or not: the same files, the same best epochs and architecture
    counts, and every metric near its golden value."""
    for folder in BIT_EXACT:
        ours, golden = snapshot(clone, folder), snapshot(GOLDEN, folder)
        assert set(ours) == set(golden), folder
        for rel, data in golden.items():
            if folder == "metrics/profile":  # parameter and FLOP counts do not depend on kernels
                assert json.loads(ours[rel]) == json.loads(data), rel
                continue
            if folder == "metrics/bn":  # variance ratios of a 300-image model: the layers, not their values
                assert json.loads(ours[rel])["layers"].keys() == json.loads(data)["layers"].keys(), rel
                continue
            mine, expected = _numbers(rel, ours[rel]), _numbers(rel, data)
            assert set(mine) == set(expected), rel
            for name, value in expected.items():
                if name == "best_epoch":
                    assert mine[name] == value, f"{folder}/{rel} {name}"
                elif "loss" in name:
                    assert abs(mine[name] - value) <= LOSS_TOLERANCE * abs(value), f"{folder}/{rel} {name}"
                else:
                    assert abs(mine[name] - value) <= ACC_TOLERANCE, f"{folder}/{rel} {name}"


@ON_CLONE
def test_a_claim_whose_runs_all_trained_is_judged_from_their_per_seed_metrics(clone: Path):
    """On real stage outputs: the study's floor, and the paired difference with its 95% t interval,
    computed here from the metrics files."""
    params = load_params(clone / "params.yaml")
    claim = next(c for c in json.loads((clone / "report/stats.json").read_text())["claims"] if c["id"] == JUDGED_CLAIM)

    first, second = claim["compared"]
    test_acc1 = {variant: [json.loads(run_.path(clone / "metrics/train", ".json").read_text())["test"]["acc1"]
                           for run_ in params.variant_runs(variant)] for variant in (first, second, "s2_cnn_linear")}
    floor = statistics.fmean(test_acc1["s2_cnn_linear"])
    if min(test_acc1[first] + test_acc1[second]) <= floor:  # not where the kernel pin holds (golden bytes)
        assert claim["verdict"].startswith(NOT_TESTABLE) and "at or below the floor" in claim["verdict"], claim
        return
    differences = [a - b for a, b in zip(test_acc1[first], test_acc1[second], strict=True)]
    mean = statistics.fmean(differences)
    half = scipy.stats.t.ppf(0.975, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    assert claim["regime"] == "reached" and verdict_word(claim["verdict"]) in (*DECIDED, INCONCLUSIVE), claim
    interval = f"paired 95% CI [{mean - half:+.4f}, {mean + half:+.4f}]"
    assert claim["difference"] == f"{first} - {second} = {mean:+.4f}, {interval}"


@ON_CLONE
def test_second_repro_is_a_no_op(clone: Path):
    assert json.loads(run(["dvc", "status", "--json"], clone)) == {}
    assert "Running stage" not in run(["dvc", "repro"], clone)


@ON_CLONE
def test_forced_rerun_is_byte_identical(clone: Path):
    """A stage rerun over the outputs, run cache and checkpoints folder its first run left writes the
    same bytes. Where the kernel pin holds, the golden test has already shown every family's train
    bytes to be the committed ones, so one train stage (two seeds) is rerun; elsewhere, one per family."""
    folders = ("metrics/train", "metrics/profile", "metrics/bn", "plots/train", "metrics/summary.json")
    before = [snapshot(clone, folder) for folder in folders]
    trains = ["s2_cnn"] if UNPINNABLE is None else ["s2_mlp", "s2_cnn", "lenet_bn_dropout", "s3_resnet18_dropout_head"]
    stages = [f"train@{variant}" for variant in trains] + ["profile", "aggregate"]  # and every stage kind after train
    run(["dvc", "repro", "--force", "--single-item", *stages], clone)
    assert [snapshot(clone, folder) for folder in folders] == before


@ON_CLONE
def test_an_experiment_retrains_only_runs_that_follow_dropout_and_a_fresh_clone_diffs_it(clone: Path, tmp_path: Path):
    run(["git", "add", "-A"], clone)
    run(["git", "commit", "-qm", "results"], clone)
    params = load_params(clone / "params.yaml")
    followers = {name for name, run_ in params.runs().items() if run_.rate_key == "dropout"}
    assert followers and followers != set(params.runs())
    train_before, speed_before = snapshot(clone, "metrics/train"), snapshot(clone, "metrics/speed")

    run(["dvc", "exp", "run", "-S", "dropout=0.8"], clone)

    train_after, speed_after = snapshot(clone, "metrics/train"), snapshot(clone, "metrics/speed")
    for name, run_ in params.runs().items():
        key = run_.path(Path(), ".json").as_posix()
        if name in followers:
            assert train_after[key] != train_before[key], f"{name} follows dropout but its metrics did not change"
        else:  # not retrained: even its timing file, which differs on every run, is untouched
            assert speed_after[key] == speed_before[key], f"{name} does not follow dropout but was retrained"
            assert train_after[key] == train_before[key]

    shown = json.loads(run(["dvc", "exp", "show", "--json"], clone))
    assert shown, "dvc exp show listed no experiments"
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], clone))
    assert "s2_cnn" in diff["metrics/summary.json"]
    run(["dvc", "plots", "diff", "HEAD", "-o", str(tmp_path / "plots_diff")], clone)
    html = (tmp_path / "plots_diff" / "index.html").read_text()
    title = yaml.safe_load((clone / "params.yaml").read_text())["studies"]["s2_cnn"]["title"]  # names the plots
    assert f"{title}: train (solid) and validation (dashed) top-1 accuracy, mean over seeds, 95% band" in html
    assert f"{title}: test top-1 accuracy, mean over seeds with its 95% interval" in html
    run(["git", "add", "-A"], clone)  # the experiment's results, committed as a second revision
    run(["git", "commit", "-qm", "dropout 0.8"], clone)
    fresh_clone_shows_and_diffs_every_plot(clone, tmp_path / "fresh")


def fresh_clone_shows_and_diffs_every_plot(origin: Path, fresh: Path) -> None:
    """A git clone of two commits of results, with no DVC cache and no remote, draws every top-level
    plot with both revisions' data, as `dvc plots diff` and the curves need."""
    run(["git", "clone", "-q", str(origin), str(fresh)], fresh.parent)
    assert not (fresh / ".dvc" / "cache").exists()
    shown = json.loads(run(["dvc", "plots", "diff", "HEAD~1", "--json"], fresh))
    declared = [next(iter(entry)) for entry in yaml.safe_load((fresh / "dvc.yaml").read_text())["plots"]]
    assert sorted(shown["data"]) == sorted(declared) and not shown.get("errors")
    for plot_id in declared:
        rows = shown["data"][plot_id][0]["content"]["data"]["values"]
        assert {row["rev"] for row in rows} == {"HEAD~1", "workspace"}, plot_id
    run(["dvc", "plots", "diff", "HEAD~1", "-o", "out"], fresh)
    html = (fresh / "out" / "index.html").read_text()
    assert all(plot_id in html for plot_id in declared)
    table = run(["dvc", "metrics", "show", "--md"], fresh)
    assert "s2_cnn" in table and "claims.confirmed" in table


def test_the_pipeline_runs_unchanged_on_cifar10_served_over_http(tmp_path_factory):
    """dataset: a synthetic CIFAR-10 in the exact binary format, declared in extra_datasets and
    downloaded by the real download stage from a local server: nothing after it is dataset-specific."""
    served = tmp_path_factory.mktemp("served")
    archive = write_cifar10_tar(served / "cifar-10-binary.tar.gz", cifar10_arrays(per_batch=120, n_test=200))
    params = shrink(yaml.safe_load((REPO / "params.yaml").read_text()), keep=CIFAR_VARIANTS)
    params["data"].update(val_size=100, train_limit=300, test_limit=200)
    with serve(served) as server:
        params["dataset"] = "cifar10_served"
        params["extra_datasets"] = {"cifar10_served": {
            "format": "cifar10_binary", "urls": [server.url],
            "files": {"archive": {"name": archive.name, "size": archive.stat().st_size,
                                  "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}}}}
        root = make_clone(tmp_path_factory.mktemp("cifar_clone"), params)
    assert [(r.path, r.status) for r in server.requests] == [("/cifar-10-binary.tar.gz", 200)]
    meta = json.loads((root / "data/prepared/meta.json").read_text())
    assert meta["dataset"] == "cifar10_served" and meta["classes"] == list(CIFAR10_CLASSES)
    assert meta["input_shape"] == [3, 32, 32] and meta["sizes"] == {"train": 300, "val": 100, "test": 200}
    for name in CIFAR_VARIANTS:
        metrics = json.loads((root / f"metrics/train/{name}/seed0.json").read_text())
        assert 0.0 <= metrics["test"]["acc1"] <= metrics["test"]["acc5"] <= 1.0
        assert json.loads((root / f"metrics/profile/{name}.json").read_text())["input_shape"] == [3, 32, 32]
        assert (root / f"report/bn/{name}.png").read_bytes()[:4] == b"\x89PNG"
    # Class-coloured synthetic images are easy: a CNN must clearly beat chance (0.1) after one epoch.
    assert json.loads((root / "metrics/train/s2_cnn/seed0.json").read_text())["test"]["acc1"] > 0.5
    summary = (root / "report/summary.md").read_text()
    assert all(name in summary for name in CIFAR_VARIANTS)
    assert json.loads(run(["dvc", "status", "--json"], root)) == {}


SMALL_VARIANTS = ("s2_cnn", "s4_mlp_p2_p5")  # S2's CNN follows `dropout`; the S4 MLP has fixed rates


@pytest.fixture(scope="session")
def small_clone(tmp_path_factory) -> Path:
    """A clone with S2's CNN and one S4 MLP, two seeds each: cheap enough to run many times over."""
    require_fashion_mnist()
    params = shrink(yaml.safe_load((REPO / "params.yaml").read_text()), keep=SMALL_VARIANTS)
    return make_clone(tmp_path_factory.mktemp("small"), params)


@ON_SMALL_CLONE
def test_a_dvc_remote_shares_the_models_and_the_run_cache(small_clone: Path, tmp_path: Path):
    """make push from one clone to a local-directory remote; a fresh clone's make pull gets every
    model and a clean `dvc status`; a clone with the run cache alone restores instead of training."""
    origin = tmp_path / "origin"
    shutil.copytree(small_clone, origin)
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-qm", "results"], origin)
    refused = attempt(["make", "-o", "setup", "push"], origin)
    assert refused.returncode != 0 and "make push: no default DVC remote; add one first" in refused.stdout
    assert attempt(["dvc", "remote", "default"], origin).returncode == 1  # what make checks: DVC, found on PATH
    run(["dvc", "remote", "add", "-d", "storage", str(tmp_path / "remote")], origin)
    run(["git", "commit", "-qam", "DVC remote"], origin)
    run(["make", "-o", "setup", "push"], origin)

    fresh = tmp_path / "fresh"
    run(["git", "clone", "-q", str(origin), str(fresh)], tmp_path)
    assert not list(fresh.glob("models/**/*.pt"))  # git has DVC's models/.gitignore, not the models
    run(["make", "-o", "setup", "pull"], fresh)
    params = load_params(origin / "params.yaml")
    models = sorted(p.relative_to(origin).as_posix() for p in (origin / "models").rglob("*.pt"))
    assert models == sorted(run_.path(Path("models"), ".pt").as_posix() for run_ in params.runs().values())
    assert all((fresh / m).read_bytes() == (origin / m).read_bytes() for m in models)
    assert json.loads(run(["dvc", "status", "--json"], fresh)) == {}

    # Only the run cache: no dvc.lock, no outputs, an empty cache; `dvc fetch --run-cache` brings the
    # remote's run records, and `dvc repro --pull` restores every train stage from them (pulling
    # the outputs they name), byte for byte, without training.
    only_runs = tmp_path / "only_runs"
    run(["git", "clone", "-q", str(origin), str(only_runs)], tmp_path)
    run(["git", "rm", "-q", "dvc.lock"], only_runs)
    run(["git", "commit", "-qm", "no lock"], only_runs)
    run(["dvc", "fetch", "--run-cache"], only_runs)
    output = run(["dvc", "repro", "--pull"], only_runs)
    for variant in params.trained_variants():
        assert f"Stage 'train@{variant}' is cached - skipping run" in output, output
        assert f"Running stage 'train@{variant}'" not in output, output
    for folder in ("metrics/train", "metrics/bn", "plots/train", "models"):
        assert snapshot(only_runs, folder) == snapshot(origin, folder), folder


@ON_SMALL_CLONE
def test_a_dropout_sweep_runs_through_the_dvc_queue(small_clone: Path):
    """`droplab sweep`: two rates queued as DVC experiments, run at once by two queue workers, then the report."""
    root = small_clone
    run(["droplab", "sweep", "--rates", "0.2,0.8", "--jobs", "2", "--variants", "s2_cnn"], root)

    sweep = json.loads((root / "report/sweep/sweep.json").read_text())
    points = {point["p"]: point for point in sweep["points"]}
    assert sorted(points) == [0.2, 0.8]
    assert all(point["seeds"] == 2 and point["val_acc1_sd"] is not None for point in points.values())
    best = max(sorted(points), key=lambda p: points[p]["val_acc1"])  # ties: the lowest p, as documented
    assert [(row["variant"], row["p"]) for row in sweep["best"]] == [("s2_cnn", best)]
    assert sweep["best"][0]["test_acc1"] == points[best]["test_acc1"]
    assert (root / "report/sweep/sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "# S2 dropout sweep" in (root / "report/sweep/sweep.md").read_text()
    shown = json.loads(run(["dvc", "exp", "show", "--json"], root))
    states = [group["executor"]["state"] for commit in shown for group in commit.get("experiments") or []]
    assert states == ["success"] * 2


def test_the_pull_request_script_compares_the_head_with_its_base(tmp_path: Path):
    """.ci/review, as the GitHub workflow calls it, on a fresh clone: the base in a worktree, the
    head here, sharing one DVC cache, so the head retrains only the variant the change touches."""
    require_fashion_mnist()
    params = shrink(yaml.safe_load((REPO / "params.yaml").read_text()), keep=SMALL_VARIANTS)
    origin = make_repo(tmp_path / "origin", params)  # the base commit, without results
    root = tmp_path / "checkout"  # what actions/checkout gives: the commits, no outputs, no cache
    run(["git", "clone", "-q", str(origin), str(root)], tmp_path)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["dropout"] = 0.3  # the "pull request": s2_cnn follows dropout, s4_mlp_p2_p5 has fixed rates
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-qm", "lower dropout", "params.yaml"], root)
    review = attempt(["bash", ".ci/review", "HEAD~1", "review"], root)
    assert review.returncode == 0, review.stdout
    base, head = review.stdout.split("droplab review: the head")
    assert "Running stage 'train@s2_cnn'" in base and "Running stage 'train@s4_mlp_p2_p5'" in base
    assert "Running stage 'train@s2_cnn'" in head  # the change
    assert "Stage 'train@s4_mlp_p2_p5' is cached - skipping run" in head  # restored from the base's run cache
    assert head.count("Running stage 'train@") == 1
    review = (root / "review" / "report.md").read_text()
    assert "| metrics/summary.json | s2_cnn " in review  # dvc metrics diff --md, row per change
    assert re.search(r"\| params\.yaml +\| dropout +\| 0\.5 +\| 0\.3 +\|", review)  # dvc params diff --md, no other
    assert re.search(r"\| s4-orders-alike +\|", review)  # the claims table, a row per claim
    images = sorted(p.name for p in (root / "review" / "plots").iterdir())
    assert "s2_cnn_acc1.png" in images and "s4_d2l_loss.png" not in images  # only plots that changed
    assert all(f"(plots/{name})" in review for name in images)
    assert (root / "review" / "plots" / "s2_cnn_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert run(["git", "status", "--porcelain", "params.yaml", "dvc.yaml"], root).strip() == ""
    assert run(["git", "worktree", "list"], root).count("\n") == 1  # the base worktree is gone


def _tracked_outputs(root: Path) -> dict[str, bytes]:
    """Every file a stage writes, as DVC left it: what a bad input arriving through DVC must not touch."""
    files = {}
    for folder in ("models", "metrics", "plots", "report", "data/prepared", "data/params.checked"):
        files.update({f"{folder}/{rel}": data for rel, data in snapshot(root, folder).items()})
    return files


def _fails_through_dvc(root: Path, args: list[str], expected: tuple[str, ...]) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **GIT_IDENTITY}
    before = _tracked_outputs(root)
    try:
        done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert "Running stage 'validate'" in output and "droplab validate: error: " in output, output
        assert all(fragment in output for fragment in expected), output
        assert "Traceback" not in output
        assert _tracked_outputs(root) == before  # DVC stopped at validate: no stage's outputs were deleted
    finally:
        run(["git", "checkout", "--", "params.yaml", "dvc.yaml"], root)


@ON_SMALL_CLONE
def test_bad_params_arriving_through_dvc_stop_before_any_output_is_touched(small_clone: Path):
    """The catalogue's THROUGH_DVC rows, run the way users run them (last in this module: the clone's
    params.yaml and dvc.yaml are restored after each)."""
    root = small_clone
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "results", "--allow-empty"], root)
    _fails_through_dvc(root, ["dvc", "exp", "run", "-S", "dropout=abc"],  # dvc-exp-run-bad-value
                       ("dropout: Input should be a valid number",))
    _fails_through_dvc(root, ["dvc", "exp", "run", "-S", "train.lr=-1"],  # dvc-exp-run-bad-lr
                       ("train.lr: Input should be greater than 0",))
    params = yaml.safe_load((root / "params.yaml").read_text())  # dvc-new-variant-without-runs
    params["variants"]["s2_cnn_wide"] = {**params["variants"]["s2_cnn"], "channels": [128, 256]}
    params["studies"]["s2_cnn"]["variants"].append("s2_cnn_wide")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _fails_through_dvc(root, ["dvc", "repro"], ("the runs are out of date with params.yaml", "missing: s2_cnn_wide"))
    assert json.loads(run(["dvc", "status", "--json"], root)) == {}
