"""The BN analysis the `train@<variant>` stage runs on each trained seed: BN parameters, the variance
shift dropout causes and BN recalibration. It returns the seed's BnReport record (which rounds
the numbers); it writes no file and draws no figure."""

from __future__ import annotations

import statistics

import torch
from torch import nn

from droplab.analysis import bn_analysis
from droplab.errors import DroplabError
from droplab.records import BnLayer, BnReport, Recalibration, Spread
from droplab.training.context import Context
from droplab.training.device_data import BatchTransform, Split, eval_batches
from droplab.training.train import evaluate


def _spread(values: list[float]) -> Spread:
    return Spread(mean=statistics.fmean(values), std=statistics.pstdev(values), min=min(values), max=max(values))


def _mean(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.fmean(present) if present else None


def _check_no_single_image_batch(model: nn.Module, images: int, eval_batch_size: int) -> None:
    """Recalibration runs BN in train mode, where torch refuses a BatchNorm1d batch of one image
    (one value has no variance): name the settings instead of a traceback after training."""
    if not any(isinstance(bn, nn.BatchNorm1d) for _, bn in bn_analysis.bn_layers(model)):
        return
    rows = torch.empty(images, 0)
    if any(len(batch) == 1 for batch, _ in eval_batches(Split(rows, rows), eval_batch_size)):
        raise DroplabError(f"the BN analysis would pass its {images} training images (analysis.train_images) in "
                           f"batches of train.eval_batch_size = {eval_batch_size}, one of them a single image, "
                           "which a BatchNorm1d layer cannot normalize; use 2 or more images per batch")


def analyze_run(model: nn.Module, splits: dict[str, Split], transform: BatchTransform, ctx: Context,
                train_images: int | None, eval_batch_size: int, seed: int, test: dict) -> BnReport:
    """BN analysis of one trained model: every BN measurement on batches of the first
    `train_images` training images (all of them when None), dropout masks seeded with `seed`,
    recalibration evaluated on the test split against `test`, the metrics training measured
    there with the same weights (one test pass saved). The model's weights are not changed."""
    train_subset = Split(splits["train"].images[:train_images], splits["train"].labels[:train_images])
    _check_no_single_image_batch(model, len(train_subset), eval_batch_size)

    def batches():
        return (transform(images) for images, _ in eval_batches(train_subset, eval_batch_size))

    affine = bn_analysis.learned_affine(model)
    shifts = bn_analysis.variance_shifts(model, batches, seed) if affine else {}
    layers = {}
    for name, values in affine.items():
        shift = shifts[name]
        layers[name] = BnLayer(
            role=shift.role, fed_by_dropout=shift.fed_by_dropout,
            gamma=_spread(values["gamma"]), beta=_spread(values["beta"]),
            dropout_variance_ratio=shift.dropout_variance_ratio,
            dropout_variance_ratio_theory=shift.dropout_variance_ratio_theory,
            theory_gap=shift.theory_gap, stored_variance_shift=shift.stored_variance_shift)
    blocks = [shifts[name] for name in affine if shifts[name].role == "block"]
    recalibration = None
    if affine:
        before = test
        after = evaluate(bn_analysis.recalibrate(model, batches), splits["test"], eval_batch_size, ctx)
        recalibration = Recalibration(
            test_acc1_before=before["acc1"], test_acc1_after=after["acc1"],
            test_acc1_gain=after["acc1"] - before["acc1"],
            test_loss_before=before["loss"], test_loss_after=after["loss"])
    return BnReport(bn_layers=len(affine), layers=layers,
                    dropout_variance_ratio_blocks=_mean([shift.dropout_variance_ratio for shift in blocks]),
                    stored_variance_shift_blocks=_mean([shift.stored_variance_shift for shift in blocks]),
                    recalibration=recalibration)
