"""The GPU path, checked on the CPU: deterministic modules only, no host work inside a step,
the memory format the config names, a checkpoint identity that knows the device, sharded
evaluation, and SyncBatchNorm that keeps droplab's dropout."""

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
import torch
from timm.layers.adaptive_avgmax_pool import (
    FastAdaptiveAvgMaxPool,
    FastAdaptiveCatAvgMaxPool,
    FastAdaptiveMaxPool,
)
from torch import nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from droplab.config import parse_params
from droplab.errors import DroplabError
from droplab.models.norm import DropoutBatchNorm2d, DropoutSyncBatchNorm, convert_sync_batchnorm
from droplab.models.registry import create_model
from droplab.models.resnet import ResNet
from droplab.models.resnet_spec import Head
from droplab.records import load_meta
from droplab.training import checkpoint, train
from droplab.training.device_data import BatchTransform, Shard, Split, draw_crop_flip, train_batches
from droplab.training.optim import build_scheduler

from synthetic import write_prepared

# The aten ops behind torch.use_deterministic_algorithms' list of operations that raise on CUDA
# (torch 2.14 docs), as they appear in a training step's forward and backward.
CUDA_NONDETERMINISTIC = {
    "avg_pool3d_backward", "_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward",
    "adaptive_max_pool2d_backward", "fractional_max_pool2d_backward", "fractional_max_pool3d_backward",
    "max_unpool2d", "max_unpool3d", "upsample_linear1d_backward", "upsample_bilinear2d_backward",
    "upsample_bicubic2d_backward", "upsample_trilinear3d_backward", "reflection_pad1d_backward",
    "reflection_pad2d_backward", "reflection_pad3d_backward", "nll_loss2d_forward", "_ctc_loss_backward",
    "_embedding_bag_backward", "put_", "histc", "median", "grid_sampler_2d_backward", "grid_sampler_3d_backward",
    "max_unpool1d", "bincount", "scatter_reduce",
}
FAST_POOLS = {"max": FastAdaptiveMaxPool, "avgmax": FastAdaptiveAvgMaxPool,
              "catavgmax": FastAdaptiveCatAvgMaxPool}


class OpRecorder(TorchDispatchMode):
    """Every aten op that runs, with the devices of its tensor inputs and outputs."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple[str, list[torch.Tensor], list[torch.Tensor]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat_in = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        flat_out = [a for a in torch.utils._pytree.tree_leaves(out) if isinstance(a, torch.Tensor)]
        self.ops.append((func.overloadpacket.__name__, flat_in, flat_out))
        return out

    def names(self) -> set[str]:
        return {name for name, _, _ in self.ops}

    def host_work(self) -> list[str]:
        """Ops that create a host tensor beyond a 0-d scalar (torch's optimizers keep their step
        count on the host by design), or read a device value back to the host."""
        found = []
        for name, inputs, outputs in self.ops:
            if any(t.device.type == "cpu" and t.numel() > 1 for t in outputs):
                found.append(f"{name} made a host tensor")
            if name in ("_local_scalar_dense", "item") and any(t.device.type != "cpu" for t in inputs):
                found.append(f"{name} read a device value")
        return found


def _one_step(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    F.cross_entropy(model(x), labels).backward()
    optimizer.step()


@pytest.fixture
def deterministic():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("head", get_args(Head))
def test_every_head_trains_a_step_with_deterministic_ops_only(head: str, deterministic):
    torch.manual_seed(0)
    model = ResNet([3, 16, 16], 10, arch="resnet18", placement="after_bn", stem="small", head=head, resize=None,
                   rates=[0.2, 0.3])
    recorder = OpRecorder()
    with recorder:
        _one_step(model.train(), torch.randn(4, 3, 16, 16), torch.arange(4))
    assert not recorder.names() & CUDA_NONDETERMINISTIC, recorder.names() & CUDA_NONDETERMINISTIC
    pools = [m for m in model.modules() if isinstance(m, nn.AdaptiveMaxPool2d)]
    assert not pools, f"{head}: {pools} (nn.AdaptiveMaxPool2d's backward raises on CUDA under deterministic mode)"
    # nn.AdaptiveAvgPool2d's backward raises on CUDA too, except at output size 1, which ATen computes as a mean
    assert all(m.output_size in (1, (1, 1)) for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d))
    if head in FAST_POOLS:
        assert isinstance(model.body.global_pool.pool, FAST_POOLS[head])


@pytest.mark.parametrize("head", ["max", "avgmax", "catavgmax"])
def test_the_fast_pools_compute_what_the_adaptive_pools_do(head: str):
    """timm's plain pools (what S3 named) and the fast ones droplab builds: the same forward, and
    the same gradient where each map's maximum is unique (amax splits it between tied maxima)."""
    from timm.layers import SelectAdaptivePool2d

    x = torch.relu(torch.randn(6, 8, 5, 5)).requires_grad_()
    grads = []
    outs = []
    for pool_type in (head, f"fast{head}"):
        out = SelectAdaptivePool2d(pool_type=pool_type, flatten=True)(x)
        (grad,) = torch.autograd.grad((out * torch.arange(out.shape[1])).sum(), x)
        outs.append(out)
        grads.append(grad)
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])


def test_no_variant_droplab_trains_uses_an_op_that_raises_on_cuda(real_params: dict, deterministic):
    params = parse_params(real_params)
    for variant in params.trained_variants():
        torch.manual_seed(0)
        model = create_model(params.spec(variant), params.rates(variant), [1, 28, 28], 10).train()
        recorder = OpRecorder()
        with recorder:
            _one_step(model, torch.randn(2, 1, 28, 28), torch.arange(2))
        assert not recorder.names() & CUDA_NONDETERMINISTIC, (variant, recorder.names() & CUDA_NONDETERMINISTIC)


def _meta_step_inputs(real_params: dict, crop_pad: int, flip: bool):
    meta = torch.device("meta")
    torch.manual_seed(0)
    model = ResNet([3, 16, 16], 10, arch="resnet18", placement="before_bn", stem="small", head="max", resize=None,
                   rates=[0.2, 0.0]).to(meta)
    cfg = parse_params(real_params).train_config("s2_cnn")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # droplab's is fused, which meta lacks: one kernel
    scheduler = build_scheduler(optimizer, cfg, 4)
    split = Split(torch.empty(32, 3, 16, 16, dtype=torch.uint8, device=meta),
                  torch.empty(32, dtype=torch.int64, device=meta))
    generator = torch.Generator().manual_seed(0)
    draws = draw_crop_flip(4, 8, crop_pad, flip, generator, meta)
    images, labels = next(iter(train_batches(split, 8, generator)))
    ctx = train.Context(BatchTransform([0.5] * 3, [0.2] * 3, True, meta), 10, meta, False)
    return model, optimizer, scheduler, images, labels, draws[0], ctx


@pytest.mark.parametrize("crop_pad, flip", [(0, False), (4, True)])
def test_a_train_step_does_no_host_work(real_params: dict, crop_pad: int, flip: bool):
    """The step runs on the meta device (a device that is not the host): any host tensor or
    read-back in it would show up as a CPU tensor among its ops."""
    model, optimizer, scheduler, images, labels, draws, ctx = _meta_step_inputs(real_params, crop_pad, flip)
    recorder = OpRecorder()
    with recorder:
        for _ in range(2):  # the second step too: the optimizer's state exists by then
            logits, loss_sum = train.train_step(model, optimizer, scheduler, images, labels, draws, ctx)
    assert logits.device.type == "meta" and loss_sum.device.type == "meta"
    assert not recorder.host_work(), recorder.host_work()
    # the check can fail: the old per-step augmentation drew its offsets on the host
    with recorder:
        torch.randint(0, 9, (8,), generator=torch.Generator()).to("meta")
    assert "randint made a host tensor" in recorder.host_work()


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_convolutions_run_in_the_memory_format_the_config_names(channels_last: bool):
    torch.manual_seed(0)
    model = ResNet([3, 16, 16], 10, arch="resnet18", placement="after_bn", stem="small", head="avg", resize=None,
                   rates=[0.2, 0.0])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    cpu = torch.device("cpu")
    transform = BatchTransform([0.5] * 3, [0.2] * 3, True, cpu, channels_last)
    formats: list[tuple[bool, bool]] = []
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
        conv.register_forward_pre_hook(lambda _, args: formats.append(
            (args[0].is_contiguous(), args[0].is_contiguous(memory_format=torch.channels_last))))
    draws = draw_crop_flip(1, 4, 2, True, torch.Generator().manual_seed(0), cpu)[0]
    model(transform(torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8), draws))
    assert len(formats) == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    expected = (False, True) if channels_last else (True, False)
    assert set(formats) == {expected}


def test_the_checkpoint_identity_changes_with_the_resolved_amp_memory_format_and_device(tiny_params, tmp_path: Path):
    prepared = write_prepared(tmp_path / "prepared")
    params = parse_params(tiny_params)
    run = params.first_run("s2_cnn")
    config = params.resolve("s2_cnn")
    base = train.make_context(config, load_meta(prepared), Shard(), torch.device("cpu"))
    meta = load_meta(prepared)
    others = {
        "amp": dataclasses.replace(base, autocast=True),
        "channels_last": dataclasses.replace(base, transform=BatchTransform(
            meta.mean, meta.std, True, torch.device("cpu"), channels_last=True)),
        "device": dataclasses.replace(base, device=torch.device("meta")),
    }
    reference = train.run_identity(config, run, prepared, base)
    assert train.run_identity(config, run, prepared, base) == reference
    for name, ctx in others.items():
        changed = train.run_identity(config, run, prepared, ctx)
        assert changed["config"] != reference["config"], name
        assert changed["computes"] != reference["computes"], name  # so the checkpoint is refused, not set aside
        assert {k: v for k, v in changed.items() if k not in ("config", "computes")} == {
            k: v for k, v in reference.items() if k not in ("config", "computes")}, name


SHARDED_EVAL = """
import json, sys
import torch
import torch.distributed as dist
from droplab.training import distributed, train
from droplab.training.device_data import BatchTransform, Split

saved = torch.load(sys.argv[1], weights_only=True)
with distributed.process_group() as (shard, device):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 16), torch.nn.BatchNorm1d(16),
                                torch.nn.ReLU(), torch.nn.Linear(16, 10))
    model.load_state_dict(saved["state"])
    model.to(device)
    ctx = train.Context(BatchTransform([0.4], [0.3], True, device), 10, device, False, shard)
    metrics = train.evaluate(model, Split(saved["images"].to(device), saved["labels"].to(device)), 16, ctx, shard)
    json.dump(metrics, open(f"{sys.argv[2]}.rank{shard.rank}.json", "w"))
"""


def test_sharded_evaluation_gives_the_metrics_of_one_process(tmp_path: Path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    model(torch.randn(64, 1, 28, 28))  # running statistics that are not the initial ones
    images = torch.randint(0, 256, (101, 1, 28, 28), dtype=torch.uint8)  # 101: the shares are 51 and 50
    labels = torch.randint(0, 10, (101,))
    torch.save({"state": model.state_dict(), "images": images, "labels": labels}, tmp_path / "inputs.pt")
    (tmp_path / "evaluate.py").write_text(SHARDED_EVAL)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(tmp_path / "evaluate.py"), str(tmp_path / "inputs.pt"), str(tmp_path / "metrics")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"metrics.rank{rank}.json").read_text()) for rank in range(2)]
    cpu = torch.device("cpu")
    alone = train.evaluate(model, Split(images, labels), 16, train.Context(BatchTransform([0.4], [0.3], True, cpu),
                                                                              10, cpu, False))
    assert ranks[0] == ranks[1]
    assert ranks[0].keys() == alone.keys()
    for key in ("acc1", "acc5", "f1_macro"):
        assert ranks[0][key] == alone[key], key
    assert ranks[0]["loss"] == pytest.approx(alone["loss"], rel=1e-6)
    assert [Shard(rank, 2).part(101) for rank in range(2)] == [slice(0, 51), slice(51, 101)]


def _bn_layout(model: nn.Module) -> list[tuple[str, str, float]]:
    return [(name, getattr(m, "placement", "none"), m.dropout.p if hasattr(m, "dropout") else 0.0)
            for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("placement", ["before_bn", "after_bn"])
def test_sync_batchnorm_keeps_every_dropout_before_or_after_its_bn(placement: str):
    torch.manual_seed(0)
    model = ResNet([3, 16, 16], 10, arch="resnet18", placement=placement, stem="small", head="avg", resize=None,
                   rates=[0.3, 0.0]).train()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):  # not timm's zero-init last BNs,
        nn.init.uniform_(bn.weight, 0.5, 1.5)  # which would zero every residual branch and hide its dropout
    converted = convert_sync_batchnorm(copy.deepcopy(model))
    block_bns = [m for m in model.modules() if isinstance(m, DropoutBatchNorm2d)]
    assert len(block_bns) == 16  # two in each of resnet18's eight blocks
    assert all(isinstance(m, nn.SyncBatchNorm) for m in converted.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm))
    assert sum(isinstance(m, DropoutSyncBatchNorm) for m in converted.modules()) == len(block_bns)
    assert _bn_layout(converted) == _bn_layout(model)
    assert converted.state_dict().keys() == model.state_dict().keys()
    x = torch.randn(4, 3, 16, 16)
    outputs = []
    for candidate in (model, converted, nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))):
        torch.manual_seed(1)  # the same dropout masks, where the dropout still is
        outputs.append(candidate(x))  # no process group: SyncBatchNorm computes plain batch norm
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.allclose(outputs[0], outputs[2]), "torch's own converter should have lost the dropout"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_sync_bn_is_refused_without_a_gpu(tiny_params, tmp_path: Path):
    tiny_params["train"]["sync_bn"] = True
    write_prepared(tmp_path / "prepared")
    with pytest.raises(DroplabError, match="train.sync_bn is true for s2_cnn, but this machine has no CUDA GPU"):
        train.main(parse_params(tiny_params).resolve("s2_cnn"), [0], tmp_path / "prepared", tmp_path / "models",
                   tmp_path / "metrics", tmp_path / "plots")
    assert not (tmp_path / "metrics").exists()


def test_the_best_weights_are_kept_as_host_copies():
    live = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    kept = checkpoint.host_copy(live)
    assert kept.keys() == live.state_dict().keys() and all(t.device.type == "cpu" for t in kept.values())
    with torch.no_grad():
        live[0].weight.add_(1.0)
    assert not torch.equal(kept["0.weight"], live[0].weight)  # a copy, not the live tensor
