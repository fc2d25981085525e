"""The in-memory training loop: batching, batched augmentation, determinism and outputs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from droplab.config import parse_params
from droplab.errors import DroplabError
from droplab.models.registry import create_model
from droplab.records import BnReport, RunResult, dump, load_meta, load_result
from droplab.training import context, train
from droplab.training.device_data import BatchTransform, Split, draw_crop_flip, load_splits, train_batches
from droplab.training.optim import build_scheduler

from synthetic import write_prepared


def test_train_batches_visit_each_image_once_and_drop_the_remainder():
    split = Split(torch.zeros(23, 1, 2, 2, dtype=torch.uint8), torch.arange(23))
    seen = torch.cat([labels for _, labels in train_batches(split, 5, torch.Generator().manual_seed(0))])
    assert len(seen) == 20 and len(set(seen.tolist())) == 20
    again = torch.cat([labels for _, labels in train_batches(split, 5, torch.Generator().manual_seed(0))])
    assert torch.equal(seen, again)
    with pytest.raises(DroplabError, match="23 images, fewer than train.batch_size=50"):
        next(train_batches(split, 50, torch.Generator()))


def test_batch_transform_standardizes():
    images = torch.randint(0, 256, (4, 2, 3, 3), dtype=torch.uint8)
    out = BatchTransform([0.5, 0.25], [0.2, 0.1], True, torch.device("cpu"))(images)
    expected = (images.double() / 255 - torch.tensor([0.5, 0.25]).view(1, 2, 1, 1)) / torch.tensor([0.2, 0.1]).view(
        1, 2, 1, 1)
    torch.testing.assert_close(out.double(), expected, atol=1e-6, rtol=0)


def test_batched_crop_and_flip_match_a_per_image_loop():
    """The epoch's draws, replayed from the generator as documented (both offsets of every step,
    then every flip), applied one image at a time with plain slicing."""
    steps, n, pad = 3, 6, 2
    images = torch.randint(0, 256, (n, 2, 5, 7), dtype=torch.uint8)
    draws = draw_crop_flip(steps, n, pad, True, torch.Generator().manual_seed(3), torch.device("cpu"))
    generator = torch.Generator().manual_seed(3)
    offsets = torch.randint(0, 2 * pad + 1, (2, steps, n), generator=generator)
    flips = torch.rand(steps, n, generator=generator) < 0.5
    transform = BatchTransform([0.5, 0.25], [0.2, 0.1], True, torch.device("cpu"))
    plain = BatchTransform([0.5, 0.25], [0.2, 0.1], True, torch.device("cpu"))(images)
    padded = torch.nn.functional.pad(plain, (pad,) * 4)
    assert flips.any() and not flips.all()
    for step in range(steps):
        out = transform(images, draws[step])
        for i in range(n):
            dy, dx = offsets[0, step, i], offsets[1, step, i]
            crop = padded[i, :, dy : dy + 5, dx : dx + 7]
            torch.testing.assert_close(out[i], crop.flip(2) if flips[step, i] else crop, rtol=0, atol=0)


def _home_train(raw: dict, variant: str) -> dict:
    """The `train:` block of `variant`'s home study at the config's scale: where its epochs are set."""
    home = next(name for name, study in raw["studies"].items() if variant in study["variants"])
    return raw["studies"][home][raw.get("scale", "cpu")].setdefault("train", {})


def _main(params, variant: str, seeds: list[int], prepared: Path, out: Path, **kwargs) -> dict[int, RunResult]:
    config = params.resolve(variant)
    return train.main(config, seeds, prepared, out / "models", out / "metrics", out / "plots", **kwargs)


@pytest.mark.parametrize("variant", ["s4_mlp_p2_p5", "s2_cnn", "lenet_inbn_bn"])
def test_training_is_deterministic_and_writes_every_output(tiny_params, tmp_path: Path, variant: str):
    _home_train(tiny_params, variant)["epochs"] = 2
    tiny_params["variants"][variant].get("train", {}).pop("epochs", None)
    params = parse_params(tiny_params)
    assert params.train_config(variant).epochs == 2
    prepared = write_prepared(tmp_path / "prepared")
    measured: list[tuple[int, int, bool]] = []
    report = BnReport(bn_layers=0, layers={}, dropout_variance_ratio_blocks=None, stored_variance_shift_blocks=None,
                      recalibration=None)

    def measure(model, splits, ctx, seed: int, test: dict) -> BnReport:  # the stage passes the BN analysis here
        measured.append((seed, len(splits["test"]), model.training))
        return report

    outputs = []
    for copy in ("a", "b"):
        out = tmp_path / copy
        results = _main(params, variant, [0], prepared, out, measure=measure)
        outputs.append(out)
    first, second = outputs
    # the model file too: DVC hashes it, and other bytes would rerun every stage that reads it
    live_files = sorted(p.relative_to(first).as_posix() for p in (first / f"plots/train/{variant}/seed0").rglob("*")
                        if p.is_file())
    files = (f"metrics/train/{variant}/seed0.json", f"models/{variant}/seed0.pt", f"metrics/bn/{variant}/seed0.json",
             *live_files)
    assert f"plots/train/{variant}/seed0/metrics.json" in live_files and len(live_files) == 1 + 7 + 1  # + confusion
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    assert list(results) == [0] and measured == [(0, 40, False)] * 2  # in eval mode, on the whole test split
    result = results[0]
    assert [row.epoch for row in result.history] == list(range(1, len(result.history) + 1))
    assert result.history[result.best_epoch - 1].val_acc1 == result.val.acc1
    assert set(result.test.model_dump()) == {"loss", "acc1", "acc5", "f1_macro", "f1_per_class"}
    assert result.sizes == {"train": 120, "val": 40, "test": 40}  # the study's cpu sizes exceed the splits
    written = first / f"metrics/train/{variant}/seed0.json"
    assert load_result(written) == result and written.read_text() == dump(result)
    assert (first / f"metrics/bn/{variant}/seed0.json").read_text() == dump(report)
    rows = (first / f"plots/train/{variant}/seed0/plots/metrics/val/acc1.tsv").read_text().splitlines()
    assert rows[0] == "step\tacc1" and [row.split("\t")[0] for row in rows[1:]] == ["1", "2"]  # step = epoch
    speed = json.loads((first / f"metrics/speed/{variant}/seed0.json").read_text())
    assert set(speed) == {"seconds", "images_per_sec", "device", "processes", "platform", "analysis_seconds"}
    assert speed["device"] == "cpu" and speed["analysis_seconds"] >= 0
    assert speed["platform"]["torch"] == torch.__version__ and speed["platform"]["threads"] == 2
    assert speed["platform"]["pinned"] == (speed["platform"]["unpinned_reason"] is None)
    checkpoint = torch.load(first / f"models/{variant}/seed0.pt", weights_only=True)
    assert checkpoint["variant"] == variant and checkpoint["best_epoch"] == result.best_epoch
    assert checkpoint["seed"] == 0


def test_another_seed_is_another_run_and_seeds_do_not_depend_on_each_other(tiny_params, tmp_path: Path):
    """One process trains every seed; each seed's bytes are those of the seed trained alone, so
    a rerun that skips finished seeds (see test_resume) writes the same files."""
    tiny_params["studies"]["s2_mlp"]["seeds"] = 2
    params = parse_params(tiny_params)
    assert params.seeds_of("s2_mlp") == [0, 1]
    prepared = write_prepared(tmp_path / "prepared")
    results = _main(params, "s2_mlp", params.seeds_of("s2_mlp"), prepared, tmp_path / "both")
    assert list(results) == [0, 1]
    assert results[0].test != results[1].test  # other initial weights, data order and dropout masks
    for folder in ("metrics/train", "metrics/speed", "plots/train", "models"):
        assert sorted(p.stem for p in (tmp_path / "both" / folder / "s2_mlp").iterdir()) == ["seed0", "seed1"], folder
    assert not list((tmp_path / "both/plots/train/s2_mlp").glob("*.earlier"))  # the aside copy goes on success
    assert not (tmp_path / "both/metrics/bn").exists()  # no `measure`, no BN file
    alone = _main(params, "s2_mlp", [1], prepared, tmp_path / "alone")
    assert alone == {1: results[1]}
    for rel in ("metrics/train/s2_mlp/seed1.json", "plots/train/s2_mlp/seed1/metrics.json",
                "plots/train/s2_mlp/seed1/test_confusion.tsv", "models/s2_mlp/seed1.pt"):
        assert (tmp_path / "alone" / rel).read_bytes() == (tmp_path / "both" / rel).read_bytes(), rel


def test_each_seed_draws_its_own_training_subset_and_every_variant_the_same_one(tiny_params, tmp_path: Path,
                                                                             monkeypatch):
    """Data sampling is part of the seed: seeds 0 and 1 train on different draws, and under one seed
    every variant of the study trains on the same draw (a paired comparison pairs the data too).
    Validation and test do not depend on the seed."""
    tiny_params["studies"]["s2_mlp"]["cpu"].update(train_images=100, val_images=30)
    params = parse_params(tiny_params)
    prepared = write_prepared(tmp_path / "prepared")
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real_fit = train.fit

    def recording_fit(model, splits, *args, **kwargs):
        seen.append((splits["train"].images, splits["val"].images))
        return real_fit(model, splits, *args, **kwargs)

    monkeypatch.setattr(train, "fit", recording_fit)
    results = _main(params, "s2_mlp", [0, 1], prepared, tmp_path / "mlp")
    _main(params, "s2_mlp_no_dropout", [0], prepared, tmp_path / "twin")
    assert [result.sizes for result in results.values()] == [{"train": 100, "val": 30, "test": 40}] * 2
    (train0, val0), (train1, val1), (twin_train0, twin_val0) = seen
    assert not torch.equal(train0, train1) and torch.equal(train0, twin_train0)
    assert torch.equal(val0, val1) and torch.equal(val0, twin_val0)
    whole = load_splits(prepared / "arrays.npz", torch.device("cpu"), load_meta(prepared))["train"]
    expected = np.sort(np.random.default_rng([params.data.split_seed, 0, 1]).permutation(len(whole))[:100])
    assert torch.equal(train1, whole.images[torch.from_numpy(expected)])  # seed 1's own seeded draw


@pytest.mark.parametrize("scripted_val_acc1, best", [([0.5, 0.9, 0.7, 0.6], 2), ([0.5, 0.8, 0.8, 0.3], 2)])
def test_test_split_is_evaluated_with_the_best_epochs_weights(tiny_params, tmp_path: Path, monkeypatch,
                                                               scripted_val_acc1, best):
    """Validation accuracy is scripted to peak early (ties go to the earlier epoch); the test pass
    must then see exactly the weights the model had after that epoch."""
    _home_train(tiny_params, "s2_mlp")["epochs"] = len(scripted_val_acc1)
    params = parse_params(tiny_params)
    assert params.train_config("s2_mlp").epochs == len(scripted_val_acc1)
    prepared = write_prepared(tmp_path / "prepared")
    real_evaluate = train.evaluate
    weights_seen: list[dict[str, torch.Tensor]] = []

    def scripted_evaluate(model, split, batch_size, ctx, shard, per_class=False):
        metrics = real_evaluate(model, split, batch_size, ctx, shard, per_class)
        weights_seen.append({k: v.clone() for k, v in model.state_dict().items()})
        if len(weights_seen) <= len(scripted_val_acc1):
            metrics["acc1"] = scripted_val_acc1[len(weights_seen) - 1]
        return metrics

    monkeypatch.setattr(train, "evaluate", scripted_evaluate)
    result = _main(params, "s2_mlp", [0], prepared, tmp_path)[0]
    assert result.best_epoch == best and result.val.acc1 == scripted_val_acc1[best - 1]
    *per_epoch, at_test = weights_seen
    assert len(per_epoch) == len(scripted_val_acc1)
    for key, value in at_test.items():
        assert torch.equal(value, per_epoch[best - 1][key]), key
    assert not all(torch.equal(v, per_epoch[-1][k]) for k, v in at_test.items())


def test_saved_checkpoint_reproduces_the_test_metrics(tiny_params, tmp_path: Path):
    _home_train(tiny_params, "s2_mlp")["epochs"] = 2
    params = parse_params(tiny_params)
    prepared = write_prepared(tmp_path / "prepared")
    result = _main(params, "s2_mlp", [0], prepared, tmp_path)[0]
    checkpoint = torch.load(tmp_path / "models/s2_mlp/seed0.pt", weights_only=True)
    model = create_model(params.spec("s2_mlp"), params.rates("s2_mlp"), [1, 28, 28], 10)
    model.load_state_dict(checkpoint["state_dict"])
    ctx = train.Context(BatchTransform([0.4], [0.3], True, torch.device("cpu")), 10, torch.device("cpu"), False)
    test_split = load_splits(prepared / "arrays.npz", torch.device("cpu"), load_meta(prepared))["test"]
    again = train.evaluate(model, test_split, 1000, ctx)
    assert again["acc1"] == pytest.approx(result.test.acc1, abs=1e-6)


def _one_epoch_loss(params, prepared: Path, variant: str, autocast: bool, channels_last: bool) -> float:
    """One epoch of `variant` from the seed-0 weights, on the CPU, with the GPU path's switches."""
    cfg = params.train_config(variant)
    cpu = torch.device("cpu")
    splits = load_splits(prepared / "arrays.npz", cpu, load_meta(prepared))
    torch.manual_seed(0)
    model = create_model(params.spec(variant), params.rates(variant), [1, 28, 28], 10)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    ctx = train.Context(BatchTransform([0.4], [0.3], True, cpu, channels_last), 10, cpu, autocast)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    scheduler = build_scheduler(optimizer, cfg, len(splits["train"]) // cfg.batch_size)
    loss = train.train_one_epoch(model, optimizer, scheduler, splits["train"], cfg, ctx,
                                 torch.Generator().manual_seed(0), None)
    assert scheduler.last_epoch == len(splits["train"]) // cfg.batch_size  # stepped once per optimizer step
    kernels = [p for p in model.parameters() if p.ndim == 4 and p.shape[1] > 1]  # layout-sensitive conv weights
    assert kernels and all(k.is_contiguous() != channels_last for k in kernels)
    return loss["loss"]


def test_bf16_autocast_and_channels_last_match_fp32_on_the_cpu(tiny_params, tmp_path: Path):
    """The GPU path's switches, run on the CPU: same loss as fp32 NCHW within bf16's precision,
    and not bit-equal (bf16 really ran). No dropout: its masks follow the memory layout."""
    params = parse_params(tiny_params)
    prepared = write_prepared(tmp_path / "prepared", n_train=200)
    fp32 = _one_epoch_loss(params, prepared, "s2_cnn_no_dropout", autocast=False, channels_last=False)
    nhwc = _one_epoch_loss(params, prepared, "s2_cnn_no_dropout", autocast=False, channels_last=True)
    bf16 = _one_epoch_loss(params, prepared, "s2_cnn_no_dropout", autocast=True, channels_last=True)
    assert nhwc == pytest.approx(fp32, rel=1e-4)
    assert bf16 == pytest.approx(fp32, rel=2e-2) and bf16 != fp32


@pytest.mark.parametrize("setting, on_cuda, expected", [("auto", True, True), ("auto", False, False),
                                                         (True, False, True), (False, True, False)])
def test_auto_switches_follow_the_device(setting, on_cuda: bool, expected: bool):
    assert context.resolve(setting, on_cuda) is expected
