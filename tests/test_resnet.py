"""timm ResNets: dropout placement proven on values seen by forward hooks, untouched stem and
shortcut BNs, timm's state_dict keys and zero_init_last, and S3's heads."""

import pytest
import timm
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from droplab.config import parse_params
from droplab.models.norm import DropoutBatchNorm2d
from droplab.models.registry import create_model
from droplab.models.resnet_spec import ResNetSpec


def resnet(arch="resnet18", placement="none", head="avg", stem="imagenet", resize=None, shape=(1, 28, 28),
           rates=(0.5,), **spec_fields) -> nn.Module:
    spec = ResNetSpec(model="resnet", arch=arch, placement=placement, head=head, stem=stem,
                      resize=resize, **spec_fields)
    return create_model(spec, list(rates), shape, 10)


def _batch_norm(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)


def _record_every_block_bn(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, dict[str, torch.Tensor]]]:
    """For every block BN: its input and output, and its dropout's input and output, from hooks."""
    records, hooks = [], []
    for bn in (m for m in model.modules() if isinstance(m, DropoutBatchNorm2d)):
        seen: dict[str, torch.Tensor] = {}
        hooks += [
            bn.register_forward_hook(lambda m, i, o, seen=seen: seen.update(bn_in=i[0].clone(), bn_out=o.clone())),
            bn.dropout.register_forward_hook(
                lambda m, i, o, seen=seen: seen.update(dropout_in=i[0].clone(), dropout_out=o.clone())),
        ]
        records.append((bn, seen))
    model.train()
    model(x)
    for hook in hooks:
        hook.remove()
    return records


BLOCK_BN_SITES = [("resnet18", 16), ("resnet50", 48)]  # 2 BNs x 8 BasicBlocks, 3 BNs x 16 Bottlenecks


def _block_bn_records(arch: str, placement: str, sites: int) -> list[tuple[nn.Module, dict[str, torch.Tensor]]]:
    torch.manual_seed(0)
    records = _record_every_block_bn(resnet(arch, placement), torch.randn(2, 1, 64, 64))
    assert len(records) == sites
    return records


@pytest.mark.parametrize("arch, sites", BLOCK_BN_SITES)
def test_after_bn_is_bn_then_dropout_in_every_block_bn(arch, sites):
    records = _block_bn_records(arch, "after_bn", sites)
    for bn, seen in records:
        torch.testing.assert_close(seen["dropout_in"], _batch_norm(seen["bn_in"], bn))  # BN first ...
        torch.testing.assert_close(seen["bn_out"], seen["dropout_out"])  # ... dropout last
    live = torch.cat([seen["dropout_in"].flatten() != 0 for _, seen in records])
    zeroed = torch.cat([seen["dropout_out"].flatten() == 0 for _, seen in records])
    assert 0.45 < zeroed[live].float().mean() < 0.55  # p = 0.5 (zero-init last BNs give no live units)


@pytest.mark.parametrize("arch, sites", BLOCK_BN_SITES)
def test_before_bn_is_dropout_then_bn_in_every_block_bn(arch, sites):
    for bn, seen in _block_bn_records(arch, "before_bn", sites):
        torch.testing.assert_close(seen["dropout_in"], seen["bn_in"])  # dropout sees the conv output ...
        torch.testing.assert_close(seen["bn_out"], _batch_norm(seen["dropout_out"], bn))  # ... BN normalizes it


@pytest.mark.parametrize("arch, block_bns", [("resnet18", 2 * 8), ("resnet50", 3 * 16)])
@pytest.mark.parametrize("placement", ["after_bn", "before_bn"])
def test_only_block_bns_carry_dropout(arch, block_bns, placement):
    model = resnet(arch, placement)
    assert type(model.body.bn1) is nn.BatchNorm2d  # stem
    shortcuts = [m.downsample[1] for m in model.body.modules() if getattr(m, "downsample", None) is not None]
    assert shortcuts and all(type(bn) is nn.BatchNorm2d for bn in shortcuts)
    dropped = [m for m in model.modules() if isinstance(m, DropoutBatchNorm2d)]
    assert len(dropped) == block_bns and all(bn.dropout.p == 0.5 and bn.placement == placement for bn in dropped)
    assert not any(isinstance(m, DropoutBatchNorm2d) for m in resnet(arch, "none").modules())


@pytest.mark.parametrize("arch, last_bn", [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_state_dict_keys_are_timms_and_every_bn_starts_at_one_as_in_torchvision(arch, last_bn):
    """The studies modified torchvision's ResNet (zero_init_residual=False): every BN starts at
    gamma 1. timm's default zeroes each block's last BN; zero_init_last: true asks for that."""
    model = resnet(arch, "before_bn")
    plain = timm.create_model(arch, pretrained=False, in_chans=1, num_classes=10)
    assert list(model.body.state_dict()) == list(plain.state_dict())
    reference = getattr(torchvision.models, arch)(zero_init_residual=False)
    assert all(torch.all(bn.weight == 1) for bn in reference.modules() if isinstance(bn, nn.BatchNorm2d))
    for zero_init_last in (False, True):
        model = resnet(arch, "before_bn", zero_init_last=zero_init_last)
        for stage in (model.body.layer1, model.body.layer4):
            for block in stage:
                assert torch.all(getattr(block, last_bn).weight == (0 if zero_init_last else 1))
                assert torch.all(block.bn1.weight == 1)


@pytest.mark.parametrize("arch, expansion", [("resnet18", 1), ("resnet50", 4)])
def test_a_narrowed_resnet_is_timms_with_those_channels(arch, expansion):
    """channels go to timm: every stage's width follows them, and so does the dropout head's (its
    hidden width is the last stage's output). The 7x7 stem keeps its 64 channels."""
    channels = [16, 32, 64, 128]
    model = resnet(arch, "after_bn", channels=channels, head="dropout_classifier", shape=(1, 64, 64),
                   rates=(0.5, 0.5))
    assert model.body.conv1.out_channels == 64
    # a 1x1 projection shortcut where the stem's 64 channels differ from the first stage's output
    assert (model.body.layer1[0].downsample is not None) == (64 != channels[0] * expansion)
    for stage, width in zip((model.body.layer1, model.body.layer2, model.body.layer3, model.body.layer4), channels,
                            strict=True):
        assert stage[-1].conv1.in_channels == width * expansion  # every block of a stage outputs width x expansion
    hidden = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [layer.in_features for layer in hidden] == [128 * expansion * 2 * 2, 128 * expansion, 128 * expansion]
    wide = resnet(arch, channels=[64, 128, 256, 512])
    assert sum(p.numel() for p in wide.parameters()) == sum(p.numel() for p in resnet(arch).parameters())
    assert not ResNetSpec(model="resnet", arch=arch).narrowed()
    assert ResNetSpec(model="resnet", arch=arch, channels=channels).narrowed()


def test_parameter_count_matches_torchvision():
    reference = torchvision.models.resnet18(num_classes=10)
    expected = sum(p.numel() for p in reference.parameters()) - 3 * 64 * 7 * 7 + 1 * 64 * 7 * 7  # 1 input channel
    assert sum(p.numel() for p in resnet("resnet18", "after_bn").parameters()) == expected


def test_max_and_avg_heads_pool_the_final_map():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 64, 64)
    for head, pool in (("avg", lambda f: f.mean((2, 3))), ("max", lambda f: f.amax((2, 3)))):
        model = resnet(head=head).eval()
        features = model.body.forward_features(x)
        torch.testing.assert_close(model(x), model.body.fc(pool(features)))


@pytest.mark.parametrize("arch, expansion", [("resnet18", 1), ("resnet50", 4)])
def test_dropout_classifier_flattens_the_2x2_map_at_64px(arch, expansion):
    width = 512 * expansion
    model = resnet(arch, head="dropout_classifier", shape=(3, 64, 64))
    layers = [type(m).__name__ for m in model.head]
    assert layers == ["Flatten", "Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Linear"]
    assert model.head[2].in_features == width * 2 * 2 and model.head[2].out_features == width
    assert model.head[5].in_features == width and model.head[7].out_features == 10
    extra = sum(p.numel() for p in model.parameters()) - sum(
        p.numel() for p in resnet(arch, shape=(3, 64, 64)).parameters())
    expected = (width * 4 * width + width) + (width * width + width)  # the two hidden layers; both end in 10
    assert extra == expected
    if arch == "resnet18":
        assert 1.25e6 < extra < 1.35e6  # S3: "adds ~1.3M parameters"


def test_small_stem_keeps_resolution_and_head_follows_the_map():
    model = resnet(stem="small", head="dropout_classifier", shape=(1, 28, 28))
    assert model.body.conv1.kernel_size == (3, 3) and model.body.conv1.stride == (1, 1)
    assert isinstance(model.body.maxpool, nn.Identity)
    assert model.head[2].in_features == 512 * 4 * 4  # 28 -> 28 -> 14 -> 7 -> 4
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_resize_feeds_the_body_at_the_requested_size():
    model = resnet(resize=64, head="dropout_classifier", shape=(1, 28, 28))
    assert model.head[2].in_features == 512 * 2 * 2


def test_default_s3_variants_end_in_a_2x2_map_so_max_and_avg_pooling_differ(real_params):
    """At the cpu scale (28 px Fashion-MNIST resized to 33) as at the published one (64 px)."""
    params = parse_params(real_params)
    for name in params.studies["s3_heads"].variants:
        if params.variants[name].model != "resnet":
            continue
        model = create_model(params.spec(name), params.rates(name), (1, 28, 28), 10)
        body = model.body
        features = body.forward_features(model.resize(torch.zeros(1, 1, 28, 28)))
        assert features.shape[-2:] == (2, 2), name
        published = create_model(params.variants[name], params.rates(name), (1, 64, 64), 10)
        assert published.body.forward_features(torch.zeros(1, 1, 64, 64)).shape[-2:] == (2, 2), name


@pytest.mark.parametrize("head, width", [("avgmax", 512), ("catavgmax", 1024)])
def test_timm_pools_come_through_global_pool(head, width):
    model = resnet(head=head, shape=(1, 64, 64)).eval()
    assert model.body.fc.in_features == width
    x = torch.randn(2, 1, 64, 64)
    features = model.body.forward_features(x)
    avg, mx = features.mean((2, 3)), features.amax((2, 3))
    pooled = 0.5 * (avg + mx) if head == "avgmax" else torch.cat([avg, mx], 1)
    torch.testing.assert_close(model(x), model.body.fc(pooled))
