"""The `analyze@<variant>` stage: BN parameters, variance shift and BN recalibration of a
trained variant, from its checkpoint."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from droplab import bn_analysis
from droplab.atomic import write_json
from droplab.config import Params
from droplab.determinism import pick_device, seed_everything
from droplab.device_data import BatchTransform, Split, eval_batches, load_splits
from droplab.errors import DroplabError
from droplab.figures import bn_figure
from droplab.models import create_model
from droplab.train import Context, evaluate


def _summary(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 6), "std": round(statistics.pstdev(values), 6),
            "min": round(min(values), 6), "max": round(max(values), 6)}


def load_model_file(path: Path, device: torch.device) -> dict:
    """A trained model file, loaded weights-only: tensors and plain containers, never code."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DroplabError(f"{path}: no trained model; run its train stage first") from None
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError: all one answer
        raise DroplabError(f"{path}: not a droplab model file; it is loaded weights-only and refused "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None


def main(params: Params, variant: str, prepared: Path, models_dir: Path, metrics_dir: Path, report_dir: Path) -> dict:
    """Analyze the first-seed run of `variant` (every variant has one)."""
    spec = params.variants[variant]
    cfg = params.train_config(variant)
    run = params.first_run(variant)
    seed_everything(run.seed, cfg.threads)
    device = pick_device()
    meta = json.loads((prepared / "meta.json").read_text())
    splits = load_splits(prepared / "arrays.npz", device)
    model = create_model(spec, params.rates(variant), meta["input_shape"], len(meta["classes"])).to(device)
    checkpoint = load_model_file(run.path(models_dir, ".pt"), device)
    model.load_state_dict(checkpoint["state_dict"])
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
