"""The `analyze@<variant>` stage: BN parameters, variance shift and BN recalibration of a
trained variant, from its checkpoint."""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from droplab import bn_analysis, torch_files
from droplab.atomic import write_json
from droplab.config import Params
from droplab.determinism import pick_device, seed_everything
from droplab.device_data import BatchTransform, Split, eval_batches, load_splits
from droplab.errors import DroplabError
from droplab.figures import bn_figure
from droplab.models import create_model
from droplab.prepare import load_meta
from droplab.train import Context, evaluate


def _summary(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 6), "std": round(statistics.pstdev(values), 6),
            "min": round(min(values), 6), "max": round(max(values), 6)}


def load_model_file(path: Path, device: torch.device, variant: str) -> dict:
    """A trained model file of `variant`, loaded weights-only: tensors and plain containers, never code."""
    content = torch_files.load(path, device, "model file", "run its train stage first")
    if not isinstance(content, dict) or not isinstance(content.get("state_dict"), dict):
        raise DroplabError(f"{path}: not a droplab model file: expected the train stage's dict with a "
                           f"state_dict, found {type(content).__name__}; rerun train@{variant}-seed<seed>")
    if content.get("variant") != variant:
        raise DroplabError(f"{path}: holds a model of variant {content.get('variant')!r}, not {variant!r}; "
                           "rerun its train stage")
    return content


def main(params: Params, variant: str, prepared: Path, models_dir: Path, metrics_dir: Path, report_dir: Path) -> dict:
    """Analyze the first-seed run of `variant` (every variant has one)."""
    spec = params.variants[variant]
    cfg = params.train_config(variant)
    run = params.first_run(variant)
    seed_everything(run.seed, cfg.threads)
    device = pick_device()
    meta = load_meta(prepared)
    splits = load_splits(prepared / "arrays.npz", device, meta)
    model = create_model(spec, params.rates(variant), meta["input_shape"], len(meta["classes"])).to(device)
    path = run.path(models_dir, ".pt")
    checkpoint = load_model_file(path, device, variant)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise DroplabError(f"{path}: its weights do not fit variants.{variant} as params.yaml now defines it "
                           f"({str(exc).splitlines()[0][:160]}); rerun its train stage") from None
    transform = BatchTransform(meta["mean"], meta["std"], spec.normalize, device)
    ctx = Context(transform, len(meta["classes"]), device, autocast=False)
    limit = params.analysis.train_images
    train_subset = Split(splits["train"].images[:limit], splits["train"].labels[:limit])

    def batches():
        return (transform(images) for images, _ in eval_batches(train_subset, cfg.eval_batch_size))

    affine = bn_analysis.learned_affine(model)
    shift, stored = bn_analysis.variance_shifts(model, batches)
    result: dict = {"bn_layers": len(affine), "layers": {}, "variance_shift_mean": None,
                    "stored_variance_shift_mean": None, "recalibration": None}
    if affine:
        result["layers"] = {name: {"gamma": _summary(values["gamma"]), "beta": _summary(values["beta"]),
                                   "variance_shift": round(shift[name], 6),
                                   "stored_variance_shift": round(stored[name], 6)}
                            for name, values in affine.items()}
        result["variance_shift_mean"] = round(statistics.fmean(shift.values()), 6)
        result["stored_variance_shift_mean"] = round(statistics.fmean(stored.values()), 6)
        before = evaluate(model, splits["test"], cfg.eval_batch_size, ctx)
        after = evaluate(bn_analysis.recalibrate(model, batches), splits["test"], cfg.eval_batch_size, ctx)
        result["recalibration"] = {
            "test_acc1_before": round(before["acc1"], 6), "test_acc1_after": round(after["acc1"], 6),
            "test_acc1_gain": round(after["acc1"] - before["acc1"], 6),
            "test_loss_before": round(before["loss"], 6), "test_loss_after": round(after["loss"], 6),
        }
    bn_figure(variant, affine, shift, report_dir / "bn" / f"{variant}.png")
    write_json(metrics_dir / "bn" / f"{variant}.json", result)
    return result
