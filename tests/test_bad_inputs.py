"""The bad-input catalogue: the table in docs/bad-inputs.md, one test per row.

Each case builds a project with earlier good outputs in place, makes one input bad, and runs
the real stage script (in this process, for speed). It must exit 2 with one line that names the
file, key or value and what was expected, print no traceback, leave no partial or temporary
file, and leave every earlier output byte-identical.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import pickle
import re
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import bad_files_and_signals as files
from droplab.__main__ import main as droplab_main
from droplab.config import parse_params
from droplab.pipeline.tiny import shrink
from droplab.records import load_meta
from droplab.training import checkpoint, train
from droplab.training.device_data import Shard
from test_cli import write_params

from conftest import REPO
from http_server import serve
from synthetic import (
    MNIST_FILES,
    cifar10_arrays,
    idx_bytes,
    mnist_arrays,
    write_cifar10_tar,
    write_idx_gz,
    write_mnist,
    write_prepared,
    write_tiny_imagenet_zip,
)

TRAIN = ("train.py", "s2_mlp", "--seeds", "0,1")  # the tiny config's seeds of s2_mlp
EARLIER = {  # earlier good outputs of every stage, which no failure may touch
    "data/raw/lab/earlier.txt": b"an earlier good download\n",
    "models/s2_mlp/seed0.pt": b"an earlier good model\n",
    "metrics/train/s2_mlp/seed0.json": b'{"earlier": "good"}\n',
    "plots/train/s2_mlp/seed0/metrics.json": b'{"step": 1, "earlier": "curves"}\n',
    "plots/train/s2_mlp/seed0/plots/metrics/val/acc1.tsv": b"step\tacc1\n1\t0.5\n",
    "metrics/bn/s2_mlp/seed0.json": b'{"layers": {}}\n',
}
# Left on purpose, for the next run to resume from: the bytes an interrupted download already has,
# and the checkpoint of the last finished epoch.
RESUME_STATE = re.compile(r"data/raw/\.downloads/.*\.part$|checkpoints/")


@dataclass
class Project:
    root: Path
    raw: dict  # params.yaml, before it is written
    monkeypatch: pytest.MonkeyPatch
    server_url: str  # a local HTTP server serving root/../served

    def lab_dataset(self, fmt: str, files: dict[str, str], urls: list[str] | None = None) -> Path:
        """Declare `lab`, a dataset of our own in `fmt`; return its data/raw folder."""
        pinned = {role: {"name": name, "sha256": "0" * 64} for role, name in files.items()}
        self.raw["extra_datasets"] = {"lab": {"format": fmt, "urls": urls or ["https://example.org/lab/"],
                                              "files": pinned}}
        if fmt == "idx":
            self.raw["extra_datasets"]["lab"]["classes"] = [f"class {i}" for i in range(10)]
        self.raw["dataset"] = "lab"
        return self.root / "data" / "raw" / "lab"

    def pin(self, role: str, path: Path) -> None:
        self.raw["extra_datasets"]["lab"]["files"][role]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Bad:
    id: str
    stage: tuple[str, ...]  # script and arguments
    expected: tuple[str, ...]  # what the one-line message must say
    arrange: Callable[[Project], object]
    cut_every: dict[str, int] | None = None  # the local server drops every transfer of a file after n bytes
    after_write: Callable[[Path], object] | None = None  # changes params.yaml's bytes after it is written
    endless: frozenset[str] = frozenset()  # files the local server streams without Content-Length, forever
    after_run: Callable[[Path], object] | None = None  # checks what the stage had to keep (a checkpoint)


IDX_ROLES = dict(zip(("train_images", "train_labels", "test_images", "test_labels"), MNIST_FILES, strict=True))


def _idx_dataset(project: Project, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    raw_dir = project.lab_dataset("idx", IDX_ROLES)
    arrays = mnist_arrays()
    change(arrays)
    write_mnist(raw_dir, arrays)


def _corrupt_idx_header(project: Project) -> None:
    _idx_dataset(project, lambda arrays: None)
    path = project.root / "data/raw/lab" / MNIST_FILES[0]
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[2] = 0x0C  # element type byte: 0x0C (int32) where the images are 0x08 (uint8)
    path.write_bytes(gzip.compress(bytes(data)))


def _label_count_mismatch(project: Project) -> None:
    _idx_dataset(project, lambda arrays: arrays.update({MNIST_FILES[1]: arrays[MNIST_FILES[1]][:-1]}))


def _truncated_archive(project: Project) -> None:
    raw_dir = project.lab_dataset("cifar10_binary", {"archive": "cifar-10-binary.tar.gz"})
    path = write_cifar10_tar(raw_dir / "cifar-10-binary.tar.gz", cifar10_arrays())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zip_path_traversal(project: Project) -> None:
    raw_dir = project.lab_dataset("tiny_imagenet", {"archive": "tiny-imagenet-200.zip"})
    raw_dir.mkdir(parents=True, exist_ok=True)
    write_tiny_imagenet_zip(raw_dir / "tiny-imagenet-200.zip", extra_members={"../../evil.txt": b"escaped"})


def _served_idx(project: Project, server_url: str) -> Path:
    """The four IDX files on the local HTTP server, declared as `lab` and pinned to their bytes."""
    served = project.root.parent / "served"
    write_mnist(served, mnist_arrays())
    project.lab_dataset("idx", IDX_ROLES, [server_url])
    for role, name in IDX_ROLES.items():
        project.pin(role, served / name)
    return served


def _checksum_mismatch(project: Project) -> None:
    served = _served_idx(project, project.server_url)
    write_idx_gz(served / MNIST_FILES[3], np.zeros(40, np.uint8))  # not the pinned test labels


def _no_source_reachable(project: Project) -> None:
    project.lab_dataset("idx", IDX_ROLES, ["http://127.0.0.1:9/"])  # the discard port: connection refused


def _interrupted_download(project: Project) -> None:
    """2.4 MB of training images behind a connection that drops every 100 kB (see `cut_every`)."""
    served = _served_idx(project, project.server_url)
    big = served / MNIST_FILES[0]
    big.write_bytes(gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 256, (3000, 28, 28), np.uint8)),
                                  compresslevel=0))
    project.pin("train_images", big)


def _typo(path: str, value: object) -> Callable[[Project], None]:
    def arrange(project: Project) -> None:
        *parents, key = path.split(".")
        node = project.raw
        for name in parents:
            node = node[name]
        node[key] = value

    return arrange


def _mismatched_checkpoint(project: Project) -> None:
    params = parse_params(project.raw)
    prepared = project.root / "data/prepared"
    config = params.resolve("s2_cnn")
    ctx = train.make_context(config, load_meta(prepared), Shard(), torch.device("cpu"))
    other = train.run_identity(config, params.first_run("s2_cnn"), prepared, ctx)
    checkpoint.save(project.root / "checkpoints/s2_mlp/seed0.pt", other, {"epoch": 1})


def _checkpoint_computed_elsewhere(project: Project) -> None:
    """This run's checkpoint (same params) written by another device, process count or kernel pin:
    unlike one under earlier params (set aside, training starts fresh), it is refused."""
    params = parse_params(project.raw)
    prepared = project.root / "data/prepared"
    config = params.resolve("s2_mlp")
    ctx = train.make_context(config, load_meta(prepared), Shard(), torch.device("cpu"))
    identity = train.run_identity(config, params.first_run("s2_mlp"), prepared, ctx)
    identity.update(config="1" * 64, computes="0" * 64)  # what a GPU run of the same params records
    checkpoint.save(project.root / "checkpoints/s2_mlp/seed0.pt", identity, {"epoch": 1})


def _disk_full(project: Project) -> None:
    real_write_text = Path.write_text

    def full_disk(self: Path, *args, **kwargs):
        if "metrics" in self.parts:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write_text(self, *args, **kwargs)

    project.monkeypatch.setattr(Path, "write_text", full_disk)


def _pickled_arrays(project: Project) -> None:
    path = project.root / "data/prepared/arrays.npz"
    with np.load(path) as arrays:
        content = dict(arrays)
    content["train_labels"] = np.array([{"not": "an array"}] * len(content["train_labels"]), dtype=object)
    np.savez(path, **content)


class _RunsCode:
    """A pickle payload: unpickling it would create the file `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code from the data directory ran"))


def _only_s2_mlp(project: Project) -> None:
    """The report stage reads the variants the aggregate's statistics list, then each one's first
    model: keep the one the project has, and the statistics that name it."""
    kept = shrink(project.raw, keep=["s2_mlp"])
    project.raw.clear()
    project.raw.update(kept)
    (project.root / "report").mkdir(exist_ok=True)
    (project.root / "report/stats.json").write_text(json.dumps({"studies": {"s2_mlp": ["s2_mlp"]}}))


def _code_in_model_file(project: Project) -> None:
    _only_s2_mlp(project)
    (project.root / "models/s2_mlp/seed0.pt").write_bytes(pickle.dumps(
        {"state_dict": _RunsCode(project.root.parent / "pwned")}))


def _arrays(project: Project, change: Callable[[bytes], bytes]) -> None:
    path = project.root / "data/prepared/arrays.npz"
    path.write_bytes(change(path.read_bytes()))


def _flip_a_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def _corrupt_npy_header(data: bytes) -> bytes:
    """The header of the first array inside the zip, `{'descr': ...}`, made unparseable."""
    at = data.index(b"{'descr'")
    return data[:at] + b"{'descr' % broken" + data[at + len(b"{'descr' % broken"):]


def _meta(change: Callable[[dict], object]) -> Callable[[Project], None]:
    def arrange(project: Project) -> None:
        path = project.root / "data/prepared/meta.json"
        meta = json.loads(path.read_text())
        change(meta)
        path.write_text(json.dumps(meta))

    return arrange


def _model_file(content: object) -> Callable[[Project], None]:
    def arrange(project: Project) -> None:
        _only_s2_mlp(project)
        torch.save(content, project.root / "models/s2_mlp/seed0.pt")

    return arrange


def _full_disk_under(folder: str, method: str) -> Callable[[Project], None]:
    def arrange(project: Project) -> None:
        real = getattr(Path, method)

        def full_disk(self: Path, *args, **kwargs):
            if folder in self.parts:
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
            return real(self, *args, **kwargs)

        project.monkeypatch.setattr(Path, method, full_disk)

    return arrange


def _interrupted_training(project: Project) -> None:
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    project.monkeypatch.setattr("droplab.training.train.train_one_epoch", ctrl_c)


def _study(name: str) -> Callable[[Project], None]:
    def arrange(project: Project) -> None:
        project.raw["studies"][name] = {"title": "escapes", "variants": ["s2_mlp"]}

    return arrange


def _claims(claims: list[dict]) -> Callable[[Project], None]:
    """The repository's claims.yaml with its claims list replaced."""
    def arrange(project: Project) -> None:
        header = yaml.safe_load((REPO / "claims.yaml").read_text())
        (project.root / "claims.yaml").write_text(yaml.safe_dump({**header, "claims": claims}))

    return arrange


# "billion laughs": ten anchors, each a list of nine of the one before, 9**10 strings written out
ALIAS_BOMB = b"  bomb_a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    b"  bomb_a%d: &a%d [%s]\n" % (level, level, b", ".join([b"*a%d" % (level - 1)] * 9)) for level in range(1, 10))


def _bytes_in_params(old: bytes, new: bytes) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / "params.yaml"
        data = path.read_bytes()
        assert old in data, old
        path.write_bytes(data.replace(old, new, 1))

    return change


def _stale_code_deps(root: Path) -> None:
    """dvc.yaml's generated code deps of the validate stage without one package it imports."""
    path = root / "dvc.yaml"
    text = path.read_text()
    assert "      - src/droplab/results\n" in text
    path.write_text(text.replace("      - src/droplab/results\n", "", 1))


def _study_twice(project: Project) -> None:
    project.raw["studies"]["s2_mlp"]["variants"] = ["s2_mlp", "s2_mlp"]


def _sweep_experiments(change: Callable[[list[dict]], object]) -> Callable[[Project], None]:
    """`dvc exp show --json` as DVC 3.67 printed it for a sweep (sweep-a at 0.3, sweep-b at 0.2) and an
    experiment that also changed the learning rate (other-lr, at 0.3), changed by `change`; each
    experiment's report/stats.json is a passable one."""
    def arrange(project: Project) -> None:
        shown = json.loads((REPO / "tests/dvc_output/exp_show_foreign.json").read_text())
        change(shown[1]["experiments"])
        variant = {key: {"n": 2, "mean": 0.5, "sd": 0.01} for key in ("val.acc1", "val.loss", "test.acc1",
                                                                       "test.loss")}
        project.monkeypatch.setattr("droplab.pipeline.sweep.dvc", lambda *args: json.dumps(shown))
        project.monkeypatch.setattr("droplab.pipeline.sweep.stats_at", lambda rev: {"variants": {"s2_cnn": variant}})

    return arrange


def _same_lr(experiments: list[dict]) -> None:
    """other-lr's learning rate as its commit's: now it claims 0.3 exactly as sweep-a does."""
    experiments[2]["revs"][0]["data"]["params"]["params.yaml"]["data"]["train"]["lr"] = 0.001


def _file_at(name: str) -> Callable[[Project], None]:
    def arrange(project: Project) -> None:
        (project.root / name).write_text("a file where an output folder is named\n")

    return arrange


def _not_yaml_pipeline(root: Path) -> None:
    """dvc.yaml with its generated blocks intact and an unclosed list appended."""
    with (root / "dvc.yaml").open("a") as handle:
        handle.write("\n  broken: [\n")


def _seed_json(text: str) -> Callable[[Project], None]:
    """s2_mlp only (see _only_s2_mlp), its seed-0 metrics/train JSON replaced by `text`."""
    def arrange(project: Project) -> None:
        _only_s2_mlp(project)
        (project.root / "metrics/train/s2_mlp/seed0.json").write_text(text)

    return arrange


def _duplicate_lab_classes(project: Project) -> None:
    project.lab_dataset("idx", IDX_ROLES)
    project.raw["extra_datasets"]["lab"]["classes"] = ["class 0", *(f"class {i}" for i in range(9))]


CATALOGUE = [
    Bad("unknown-params-key", TRAIN, ("params.yaml is invalid", "trian: unknown key; allowed: scale, seeds"),
        _typo("trian", {"epochs": 3})),
    Bad("variant-field-typo", TRAIN, ("variants.s2_cnn.blok: unknown key; allowed:",),
        _typo("variants.s2_cnn.blok", ["conv"])),
    Bad("wrong-type", TRAIN, ("train.epochs: Input should be a valid integer (got 'ten')",),
        _typo("train.epochs", "ten")),
    Bad("dropout-rate-1", TRAIN, ("dropout: Input should be less than 1 (got 1.0)",),
        _typo("dropout", 1.0)),
    Bad("dropout-rate-negative", TRAIN, ("dropout: Input should be greater than or equal to 0 (got -0.1)",),
        _typo("dropout", -0.1)),
    Bad("unknown-model", TRAIN, ("variants.s2_cnn: Input tag 'transformer'", "'mlp', 'cnn', 'lenet5'"),
        _typo("variants.s2_cnn.model", "transformer")),
    Bad("unknown-dataset", ("download.py",), ("dataset: unknown dataset 'imagenet'; allowed: fashion_mnist",),
        _typo("dataset", "imagenet")),
    Bad("no-source-reachable", ("download.py",),
        ("no source could supply", "-idx3-ubyte.gz; tried:", "official URL http://127.0.0.1:9/",
         "gave up after 5 attempts", "Connection refused"), _no_source_reachable),
    Bad("checksum-mismatch", ("download.py",),
        ("no source could supply t10k-labels-idx1-ubyte.gz", "SHA-256 is", ", expected"), _checksum_mismatch),
    Bad("interrupted-download", ("download.py",),
        ("train-images-idx3-ubyte.gz", "bytes kept in", ".part to resume from"), _interrupted_download,
        cut_every={MNIST_FILES[0]: 100_000}),
    Bad("truncated-archive", ("preprocess.py",), ("data/raw/lab/cifar-10-binary.tar.gz", "truncated"),
        _truncated_archive),
    Bad("corrupt-idx-header", ("preprocess.py",), ("data/raw/lab/train-images-idx3-ubyte.gz",),
        _corrupt_idx_header),
    Bad("label-count-mismatch", ("preprocess.py",), ("train-labels-idx1-ubyte.gz", "119", "120"),
        _label_count_mismatch),
    Bad("zip-path-traversal", ("preprocess.py",), ("tiny-imagenet-200.zip", "../../evil.txt"), _zip_path_traversal),
    Bad("mismatched-checkpoint", TRAIN,
        ("checkpoints/s2_mlp/seed0.pt was written by another run and is not resumed: variant", "Delete it"),
        _mismatched_checkpoint),
    Bad("disk-full", TRAIN,
        ("metrics/speed/s2_mlp/seed0.json: No space left on device", "earlier outputs are unchanged"),
        _disk_full),
    Bad("nan-loss", TRAIN, ("s2_mlp seed 0: the training loss became", "at epoch 1, step",
                                         "Try a lower learning rate (studies.s2_mlp.cpu.train.lr"),
        _typo("studies.s2_mlp.cpu.train.lr", 1e30)),
    Bad("pickled-arrays", TRAIN, ("data/prepared/arrays.npz: holds pickled objects",), _pickled_arrays),
    Bad("code-in-model-file", ("report.py",),
        ("models/s2_mlp/seed0.pt: not a droplab model file; it is loaded weights-only and refused",),
        _code_in_model_file),
    Bad("study-name-escapes", ("aggregate.py",), ("studies", "name '../../escaped' may use only letters"),
        _study("../../escaped")),
    Bad("study-name-absolute", ("report.py",), ("studies", "name '/tmp/droplab-escaped' may use only letters"),
        _study("/tmp/droplab-escaped")),
    Bad("tiny-keep-typo", ("droplab", "tiny", "--keep", "s2_mpl"),
        ("--keep: 's2_mpl' not in params.yaml variants; known: ",), lambda project: None),
    Bad("sweep-jobs-0", ("droplab", "sweep", "--jobs", "0"),
        ("argument --jobs: '0': expected a whole number of experiments at once, 1 or more",), lambda project: None),
    Bad("disk-full-model", TRAIN,
        ("models/s2_mlp/seed0.pt: No space left on device", "earlier outputs are unchanged"),
        _full_disk_under("models", "write_bytes")),
    Bad("arrays-truncated", TRAIN, ("data/prepared/arrays.npz: unreadable", "rerun the preprocess"),
        lambda project: _arrays(project, lambda data: data[: len(data) // 2])),
    Bad("arrays-bit-flipped", TRAIN, ("data/prepared/arrays.npz: ", "rerun the preprocess"),
        lambda project: _arrays(project, _flip_a_byte)),
    Bad("arrays-not-zip", TRAIN, ("data/prepared/arrays.npz: unreadable", "rerun the preprocess"),
        lambda project: _arrays(project, lambda data: b"not a zip archive\n" * 100)),
    Bad("arrays-corrupt-npy-header", TRAIN,
        ("data/prepared/arrays.npz: a corrupt array inside", "rerun the preprocess"),
        lambda project: _arrays(project, _corrupt_npy_header)),
    Bad("meta-invalid-json", TRAIN, ("data/prepared/meta.json: not valid JSON", "rerun the preprocess"),
        lambda project: (project.root / "data/prepared/meta.json").write_text("{not json")),
    Bad("meta-too-few-classes", TRAIN, ("data/prepared/meta.json: classes: List should have at least 2",),
        _meta(lambda meta: meta.update(classes=["only"]))),
    Bad("meta-wrong-shape", TRAIN, ("data/prepared/meta.json: input_shape: List should have at least 3",),
        _meta(lambda meta: meta.update(input_shape=[28, 28]))),
    Bad("meta-zero-std", TRAIN, ("data/prepared/meta.json: std.0: Input should be greater than 0",),
        _meta(lambda meta: meta.update(std=[0.0]))),
    Bad("model-of-another-variant", ("report.py",),
        ("models/s2_mlp/seed0.pt: holds a model of variant 's2_cnn', not 's2_mlp'",),
        _model_file({"variant": "s2_cnn", "state_dict": {}})),
    Bad("model-bare-tensor", ("report.py",),
        ("models/s2_mlp/seed0.pt: not a droplab model file: expected the train stage's dict", "found Tensor"),
        _model_file(torch.zeros(3))),
    Bad("seed-negative", TRAIN, ("seeds.0: Input should be greater than or equal to 0 (got -1)",),
        _typo("seeds", [-1, 1])),
    Bad("seed-too-large", TRAIN, ("seeds.1: Input should be less than 4294967296 (got 4294967296)",),
        _typo("seeds", [0, 2**32])),
    Bad("split-seed-negative", ("preprocess.py",), ("data.split_seed: Input should be greater than or equal to 0",),
        _typo("data.split_seed", -5)),
    Bad("params-latin-1", TRAIN, ("params.yaml: byte 0xe9 at line", "is not UTF-8"),
        lambda project: None, after_write=_bytes_in_params(b"dataset:", "# caf\u00e9\ndataset:".encode("latin-1"))),
    Bad("claims-latin-1", ("validate.py",), ("claims.yaml: byte 0xe9 at line 1 is not UTF-8",),
        lambda project: (project.root / "claims.yaml").write_bytes("# caf\u00e9\n[]\n".encode("latin-1"))),
    Bad("claim-misspelt-variant", ("validate.py",),
        ("claims.yaml: claim 'typo' names 's2_mpl', which is neither in params.yaml variants", "did you mean 's2_mlp'"),
        _claims([{"id": "typo", "study": "s2_mlp", "says": "x", "metric": "test.acc1",
                  "expect": "s2_mpl > s2_cnn"}])),
    Bad("study-variant-twice", ("aggregate.py",),
        ("studies.s2_mlp.variants: variant 's2_mlp' is listed twice",), _study_twice),
    Bad("params-duplicate-key", TRAIN, ("params.yaml: not valid YAML", "key 'dropout' appears twice"),
        lambda project: None, after_write=_bytes_in_params(b"dataset:", b"dropout: 0.3\ndataset:")),
    Bad("adam-momentum", TRAIN, ("train: momentum = 0.9 is SGD's; Adam would ignore it",),
        _typo("train.momentum", 0.9)),
    Bad("interrupted-training", TRAIN, ("interrupted (Ctrl-C)", "resumes from it"), _interrupted_training),
    Bad("runs-params-missing", ("droplab", "runs", "--params", "absent.yaml"),
        ("absent.yaml: file not found",), lambda project: None),
    Bad("tiny-params-missing", ("droplab", "tiny", "--params", "absent.yaml"),
        ("absent.yaml: file not found",), lambda project: None),
    Bad("lenet-resize-too-small", ("train.py", "lenet_std_bn", "--seeds", "0,1"),
        ("variants.lenet_std_bn.resize: Input should be greater than or equal to 16 (got 4)",),
        _typo("variants.lenet_std_bn.resize", 4)),
    Bad("sweep-same-rate-twice", ("droplab", "sweep", "--report-only"),
        ("experiments sweep-a and other-lr both ran the sweep's dropout=0.3 on one commit; remove one",),
        _sweep_experiments(_same_lr)),
    Bad("sweep-foreign-experiments-only", ("droplab", "sweep", "--report-only"),
        ("no finished experiment has report/stats.json for s2_cnn among the sweep's own",),
        _sweep_experiments(lambda experiments: experiments.__delitem__(slice(0, 2)))),
    Bad("sweep-variants-empty", ("droplab", "sweep", "--variants", " , "),
        ("--variants ' , ': expected variant names separated by commas, each once",), lambda project: None),
    Bad("sweep-jobs-too-many", ("droplab", "sweep", "--jobs", "1000"),
        ("argument --jobs: '1000': at most", "experiments at once (this machine's CPU cores)"), lambda project: None),
    Bad("sweep-rate-twice", ("droplab", "sweep", "--rates", "0.1,0.3,0.1"),
        ("argument --rates: '0.1,0.3,0.1': a rate is listed twice",), lambda project: None),
    Bad("runs-pipeline-not-yaml", ("droplab", "runs"), ("dvc.yaml: not valid YAML at line",),
        lambda project: None, after_write=_not_yaml_pipeline),
    Bad("review-out-is-a-file", ("droplab", "review", "--out", "notes.md"),
        ("argument --out: 'notes.md': exists and is not a folder",), _file_at("notes.md")),
    Bad("try-keep-is-a-file", ("droplab", "try", "--keep", "notes.md"),
        ("argument --keep: 'notes.md': exists and is not a folder",), _file_at("notes.md")),
    Bad("try-variants-typo", ("droplab", "try", "--variants", "s2_cnn,s2_mpl"),
        ("--variants: 's2_mpl' not in params.yaml variants; known: ",), lambda project: None),
    Bad("review-outside-a-repository", ("droplab", "review"),
        ("`dvc metrics diff main --md` failed (exit ", "ERROR: "), lambda project: None),
    Bad("checkpoint-computed-elsewhere", TRAIN,
        ("checkpoints/s2_mlp/seed0.pt was written by another run and is not resumed: config", "computes (checkpoint",
         "Delete it"), _checkpoint_computed_elsewhere),
    Bad("mlp-too-large", TRAIN,
        ("hidden {'hidden': [100000000]}: this mlp has 79.7 G parameters", "make it smaller"),
        _typo("variants.s2_mlp.hidden", [100000000])),
    Bad("params-edited-after-validate", TRAIN,
        ("params.yaml changed since the validate stage ran: runs.0.rates.0 is 0.9 in it, 0.5 in "
         "data/configs/s2_mlp.json; run dvc repro again",),
        lambda project: None, after_write=_bytes_in_params(b"dropout: 0.5\n", b"dropout: 0.9\n")),
    Bad("warmup-longer-than-run", TRAIN,
        ("schedule.warmup_steps = 1000000000000 is far longer than the run's at most",
         "its lr would stay below 1% of train.lr"),
        _typo("train.schedule", {"name": "cosine", "warmup_steps": 10**12})),
    Bad("study-spec-train-key", TRAIN,
        ("studies.s2_mlp.cpu.spec.train: not an architecture field of this study's variants",),
        _typo("studies.s2_mlp.cpu.spec", {"train": {"lr": 10}})),
    Bad("study-spec-rate-key", TRAIN, ("studies.s2_mlp.cpu.spec.p: not an architecture field",),
        _typo("studies.s2_mlp.cpu.spec", {"p": "fixed_p.none"})),
    Bad("meta-std-infinity", TRAIN, ("data/prepared/meta.json: std.0: Input should be a finite number (got inf)",),
        _meta(lambda meta: meta.update(std=[float("inf")] * len(meta["std"])))),
    Bad("meta-mean-nan", TRAIN, ("data/prepared/meta.json: mean.0: Input should be a finite number (got nan)",),
        _meta(lambda meta: meta.update(mean=[float("nan")] * len(meta["mean"])))),
    Bad("params-rate-nan", TRAIN, ("fixed_p.none.0: Input should be a finite number (got nan)",),
        _typo("fixed_p.none", float("nan"))),
    Bad("meta-duplicate-classes", TRAIN, ("data/prepared/meta.json: classes: name ", "appears more than once"),
        _meta(lambda meta: meta.update(classes=[meta["classes"][0], *meta["classes"][:-1]]))),
    Bad("extra-dataset-duplicate-classes", ("download.py",),
        ("extra_datasets.lab.classes: name 'class 0' appears more than once",), _duplicate_lab_classes),
    Bad("name-trailing-newline", ("droplab", "runs"), ("studies", "name 's2\\n' may use only letters"),
        _study("s2\n")),
    Bad("tiny-keep-empty", ("droplab", "tiny", "--keep", ""), ("--keep: an empty variant name",),
        lambda project: None),
    Bad("tiny-keep-only-skipped", ("droplab", "tiny", "--keep", "s3_resnet50_avg"),
        ("params.yaml shrunk with --keep s3_resnet50_avg is invalid:",
         "no variant trains at scale cpu: every one is in its home study's cpu.skip"), lambda project: None),
    Bad("tiny-keep-a-skipped-variant", ("droplab", "tiny", "--keep", "s2_cnn,s3_resnet50_avg"),
        ("--keep: 's3_resnet50_avg' not trained at scale cpu (in its home study's cpu.skip, with the reason); "
         "leave it out",), lambda project: None),
    Bad("sweep-rates-same-percent", TRAIN, ("studies.s2_mlp.sweep.rates", "rate 0.3 appears more than once"),
        _typo("studies.s2_mlp.sweep", {"rates": [0.3, 0.30000000000000004], "select": "s2_mlp"})),
    Bad("seed-json-corrupt", ("aggregate.py",),
        ("metrics/train/s2_mlp/seed0.json: not valid JSON", "rerun its train stage"), _seed_json('{"best_epoch": 1,')),
    Bad("seed-json-incomplete", ("aggregate.py",),
        ("metrics/train/s2_mlp/seed0.json: ", "required key is missing", "rerun its train stage"),
        _seed_json('{"best_epoch": 1}')),
    Bad("code-deps-stale", ("validate.py",),
        ("dvc.yaml: the code deps of stages/validate.py are out of date with their imports", "run `droplab runs`"),
        lambda project: None, after_write=_stale_code_deps),
    Bad("download-endless-stream", ("download.py",),
        ("no source could supply train-images-idx3-ubyte.gz", "the server sent more than the",
         "bytes pinned; stopped there and kept nothing"), files.unbounded_stream,
        endless=frozenset({MNIST_FILES[0]}), after_run=files.nothing_kept_to_resume),
    Bad("source-dir-dev-zero", ("download.py",),
        ("source/train-images-idx3-ubyte.gz: a character device where a file is expected",),
        files.source_dir_dev_zero),
    Bad("fifo-checkpoint", TRAIN, ("checkpoints/s2_mlp/seed0.pt: a FIFO (named pipe) where a file is expected",
                                   "delete it to train from scratch"), files.fifo_at("checkpoints/s2_mlp/seed0.pt")),
    Bad("fifo-model", ("report.py",), ("models/s2_mlp/seed0.pt: a FIFO (named pipe) where a file is expected",),
        files.fifo_at("models/s2_mlp/seed0.pt", _only_s2_mlp)),
    Bad("fifo-raw-file", ("preprocess.py",),
        ("data/raw/lab/train-labels-idx1-ubyte.gz: a FIFO (named pipe) where a file is expected",),
        files.fifo_at(f"data/raw/lab/{MNIST_FILES[1]}", files.raw_idx_files)),
    Bad("fifo-prepared-arrays", TRAIN, ("data/prepared/arrays.npz: a FIFO (named pipe) where a file is expected",),
        files.fifo_at("data/prepared/arrays.npz")),
    Bad("sigterm-training", TRAIN, ("interrupted (SIGTERM)", "resumes from it"), files.sigterm_in_second_epoch,
        after_run=files.first_epoch_checkpoint_kept),
    Bad("labels-wrong-dtype", TRAIN, ("data/prepared/arrays.npz: train labels are <U21, not integer class indices",),
        files.string_labels),
    Bad("arrays-huge-npy-shape", TRAIN,
        ("data/prepared/arrays.npz: a corrupt array inside (train_labels.npy declares int64 [100000000000000]",),
        files.npz_member("train_labels.npy", files.huge_shape)),
    Bad("arrays-huge-npy-header", TRAIN,
        ("data/prepared/arrays.npz: a corrupt array inside (train_labels.npy: unreadable header: Header info length",),
        files.npz_member("train_labels.npy", files.huge_header)),
    Bad("bn-one-image", TRAIN, ("the BN analysis would pass its 1 training images (analysis.train_images)",
                                "use 2 or more images per batch"), _typo("analysis.train_images", 1)),
    Bad("torchrun-more-processes-than-cores", TRAIN,
        ("train.nproc_per_node = 4096 starts 4096 training processes", "CPU cores; use at most"),
        _typo("train.nproc_per_node", 4096)),
    Bad("params-deeply-nested", TRAIN, ("params.yaml: nested more than 100 levels deep at line",),
        lambda project: None,
        after_write=_bytes_in_params(b"dataset:", b"deep:\n  " + b"- " * 100_000 + b"x\ndataset:")),
    Bad("meta-deeply-nested", TRAIN, ("data/prepared/meta.json: nested too deeply to be a droplab record",),
        lambda project: (project.root / "data/prepared/meta.json").write_text("[" * 100_000 + "]" * 100_000)),
    Bad("fifo-params", TRAIN, ("params.yaml: a FIFO (named pipe) where a file is expected",),
        lambda project: None, after_write=lambda root: files.fifo(root / "params.yaml")),
    Bad("params-alias-bomb", ("droplab", "repro"),
        ("fixed_p.bomb_a0.0: Input should be a valid number (got 'x')", "... and 78 more problems"),
        lambda project: None, after_write=_bytes_in_params(b"fixed_p:\n", b"fixed_p:\n" + ALIAS_BOMB)),
]
# Cases whose bad input arrives through DVC itself; tests/test_pipeline.py runs them in a clone.
THROUGH_DVC = ["dvc-exp-run-bad-value", "dvc-exp-run-bad-lr", "dvc-new-variant-without-runs"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _outputs(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name: content for name, content in files.items() if not RESUME_STATE.match(name)}


def _run_stage(root: Path, script: str, *args: str, monkeypatch, capsys) -> tuple[int, str]:
    """A stage script (or a `droplab` command), in this process, from the project's root."""
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", [script, *args])
    monkeypatch.setattr("droplab.data.transfer.time.sleep", lambda seconds: None)  # retries without the wait
    with pytest.raises(SystemExit) as exit_:
        if script == "droplab":
            droplab_main(list(args))
        else:
            runpy.run_path(str(REPO / "stages" / script), run_name="__main__")
    return exit_.value.code, capsys.readouterr().err


def _command(stage: tuple[str, ...]) -> str:
    return stage[1] if stage[0] == "droplab" else stage[0].removesuffix(".py")


def _outside(tmp_path: Path) -> set[str]:
    """Every path next to the project and in /tmp's top level: where an escaping name would write."""
    return {str(p) for p in tmp_path.rglob("*") if "project" not in p.relative_to(tmp_path).parts[:1]} | \
        {str(p) for p in Path("/tmp").glob("droplab-escaped*")}


@pytest.mark.parametrize("bad", CATALOGUE, ids=[bad.id for bad in CATALOGUE])
def test_bad_input_stops_with_a_clear_message_and_harms_nothing(bad: Bad, tiny_params, tmp_path: Path,
                                                                monkeypatch, capsys):
    root = tmp_path / "project"
    write_prepared(root / "data" / "prepared")
    for name, content in EARLIER.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    (tmp_path / "served").mkdir()
    tiny_params["studies"]["s2_mlp"].pop("sweep")  # s2_mlp as one plain run per seed: the files EARLIER names
    with serve(tmp_path / "served", cut_every=bad.cut_every, endless=bad.endless) as server:
        (root / "claims.yaml").write_bytes((REPO / "claims.yaml").read_bytes())
        bad.arrange(Project(root, tiny_params, monkeypatch, server.url))
        write_params(root, tiny_params)
        if bad.after_write:
            bad.after_write(root)
        before, outside = _files(root), _outside(tmp_path)
        code, stderr = _run_stage(root, *bad.stage, monkeypatch=monkeypatch, capsys=capsys)

    lines = [line for line in stderr.strip().splitlines() if not line.startswith(("usage:", " "))]  # argparse usage
    assert code == 2, stderr
    assert lines[0].startswith(f"droplab {_command(bad.stage)}: error: "), stderr
    for fragment in bad.expected:
        assert fragment in stderr, f"{fragment!r} not in:\n{stderr}"
    assert "Traceback" not in stderr and "weights_only" not in stderr
    after = _files(root)
    assert _outputs(after) == _outputs(before)
    assert not [name for name in after if name.endswith(".tmp") or ".partial" in name]
    assert not (tmp_path / "pwned").exists()
    assert _outside(tmp_path) == outside  # nothing written outside the project
    if bad.after_run:
        bad.after_run(root)


def test_the_readme_table_lists_exactly_the_catalogue():
    catalogue = (REPO / "docs" / "bad-inputs.md").read_text()
    table = catalogue.split("<!-- bad-input catalogue -->")[1]
    ids = re.findall(r"^\| `([a-z0-9-]+)` \|", table, flags=re.MULTILINE)
    assert ids == [bad.id for bad in CATALOGUE] + THROUGH_DVC


def test_the_payload_would_run_if_unpickled(tmp_path: Path):
    """The code-in-model-file case is a real attack: plain pickle runs it."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_RunsCode(marker)))
    assert marker.read_text() == "code from the data directory ran"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(_write(tmp_path / "model.pt", pickle.dumps(_RunsCode(tmp_path / "again"))), weights_only=True)
    assert not (tmp_path / "again").exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
