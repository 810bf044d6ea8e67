"""DP-SIMS discriminator: shapes, frozen-backbone invariants, gradients, feature conditioning, config."""
import json

import pytest
import torch

from dpsims_aug.backbones import efficientnet_lite0_state_dict
from train_gan.discriminator import (
    DiscriminatorConfig,
    DPSIMSDiscriminator,
    FeatureConditioning,
    RunningChannelNorm,
)
from train_gan.losses import discriminator_adversarial_loss, generator_adversarial_loss

NUM_CLASSES = 4


@pytest.fixture(scope='module')
def lite0_sd() -> dict[str, torch.Tensor]:
    return efficientnet_lite0_state_dict()


def _make(lite0_sd, **kw) -> DPSIMSDiscriminator:
    torch.manual_seed(0)
    kw.setdefault('decoder_channels', 16)
    kw.setdefault('high_res_channels', 8)
    return DPSIMSDiscriminator(DiscriminatorConfig(num_classes=NUM_CLASSES, **kw), backbone_weights=lite0_sd)


def _images(b: int = 2, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


def _labels(b: int = 2, h: int = 64, w: int = 64) -> torch.Tensor:
    labels = torch.randint(0, NUM_CLASSES, (b, h, w), generator=torch.Generator().manual_seed(1))
    labels[:, :4] = 255  # some unlabeled pixels
    return labels


@pytest.mark.parametrize('conditioning', ['channel_norm', 'none'])
@pytest.mark.parametrize('size', [(64, 64), (48, 80), (33, 65)])
def test_output_shape(lite0_sd, conditioning, size):
    d = _make(lite0_sd, feature_conditioning=conditioning)
    out = d(_images(2, *size))
    assert out.shape == (2, NUM_CLASSES + 1, *size)
    assert torch.isfinite(out).all()


def test_backbone_is_frozen_and_excluded_from_optimizer(lite0_sd):
    d = _make(lite0_sd)
    d.train()
    backbone_params = list(d.backbone.parameters())
    assert backbone_params and not any(p.requires_grad for p in backbone_params)
    assert d.training and not any(m.training for m in d.backbone.model.modules())

    frozen = {id(p) for p in backbone_params}
    trainable = list(d.trainable_parameters())
    assert trainable and not frozen & {id(p) for p in trainable}
    assert all(p.requires_grad for p in trainable)
    # trainable + frozen = everything
    assert len(trainable) + len(backbone_params) == len(list(d.parameters()))
    opt = torch.optim.Adam(d.trainable_parameters(), lr=4e-4, betas=(0.0, 0.999))
    assert not frozen & {id(p) for group in opt.param_groups for p in group['params']}

    # a D update leaves the backbone (weights and BatchNorm statistics) untouched
    before = {k: v.clone() for k, v in d.backbone.state_dict().items()}
    loss = discriminator_adversarial_loss(d(_images()), d(_images(seed=2)), _labels())
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in d.backbone.state_dict().items())


@pytest.mark.parametrize('conditioning', ['channel_norm', 'none'])
def test_every_trainable_parameter_gets_a_gradient(lite0_sd, conditioning):
    d = _make(lite0_sd, feature_conditioning=conditioning).train()
    real, fake, labels = _images(), _images(seed=2), _labels()
    loss = discriminator_adversarial_loss(d(real), d(fake), labels)
    loss.backward()
    trainable = [(n, p) for n, p in d.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None or p.grad.abs().sum() == 0]
    assert trainable and not missing
    assert all(p.grad is None for p in d.backbone.parameters())


def test_gradient_reaches_the_image_through_the_backbone(lite0_sd):
    d = _make(lite0_sd).train()
    fake = _images().requires_grad_(True)
    generator_adversarial_loss(d(fake), _labels()).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0

    # the backbone path alone (high-resolution branch fed a detached copy) also carries gradient
    fake.grad = None
    logits = d.decode(fake.detach(), d.backbone_features(fake))
    generator_adversarial_loss(logits, _labels()).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_backbone_features_and_forward_with_features(lite0_sd):
    d = _make(lite0_sd).eval()
    x = _images()
    with torch.no_grad():
        feats = d.backbone_features(x)
        logits, feats2 = d.forward_with_features(x)
        assert [f.shape[1] for f in feats] == d.backbone.channels == [16, 24, 40, 112, 320]
        assert all(torch.equal(a, b) for a, b in zip(feats, feats2))
        torch.testing.assert_close(logits, d(x))


def test_backbone_weights_override_config(lite0_sd):
    d = DPSIMSDiscriminator(DiscriminatorConfig(num_classes=2, weights=None), backbone_weights=lite0_sd)
    assert torch.equal(d.backbone.model.conv_stem.weight, lite0_sd['conv_stem.weight'])
    offline = DPSIMSDiscriminator(DiscriminatorConfig(num_classes=2))  # weights='offline' by default
    assert torch.equal(offline.backbone.model.conv_stem.weight, lite0_sd['conv_stem.weight'])


def test_spectral_norm_toggle(lite0_sd):
    with_sn = _make(lite0_sd)
    without = _make(lite0_sd, spectral_norm=False)
    assert any('parametrizations' in n for n, _ in with_sn.named_parameters())
    assert not any('parametrizations' in n for n, _ in without.named_parameters())
    assert without(_images()).shape == (2, NUM_CLASSES + 1, 64, 64)


def test_running_channel_norm_uses_running_statistics():
    norm = RunningChannelNorm(3, momentum=0.1).train()
    scale = torch.tensor([1.0, 10.0, 100.0]).view(1, 3, 1, 1)
    shift = torch.tensor([5.0, -3.0, 50.0]).view(1, 3, 1, 1)
    a = torch.randn(8, 3, 16, 16) * scale + shift
    out = norm(a)  # first batch initializes the statistics
    assert bool(norm.initialized)
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2, rtol=0)
    # a shifted batch is normalized with the (slowly updated) running statistics, not its own: the shift
    # survives
    out_b = norm(a + 2 * scale)
    assert (out_b.mean(dim=(0, 2, 3)) > 1.5).all()
    # eval: normalizes with the stored statistics and does not update them
    norm.eval()
    mean, var = norm.running_mean.clone(), norm.running_var.clone()
    c = torch.randn(2, 3, 4, 4) * scale
    expected = (c - mean.view(1, 3, 1, 1)) / (var.view(1, 3, 1, 1) + norm.eps).sqrt()
    torch.testing.assert_close(norm(c), expected)
    assert torch.equal(norm.running_mean, mean) and torch.equal(norm.running_var, var)
    assert {'running_mean', 'running_var', 'initialized'} <= set(norm.state_dict())
    # statistics travel with the state dict (resume) and are used right away by a fresh module
    fresh = RunningChannelNorm(3).eval()
    fresh(c)  # uninitialized: this batch's own statistics
    fresh.load_state_dict(norm.state_dict())
    torch.testing.assert_close(fresh(c), expected)


def test_running_channel_norm_ignores_single_value_batches():
    norm = RunningChannelNorm(2).train()
    out = norm(torch.full((1, 2, 1, 1), 3.0))  # batch 1, 1x1 map: no variance to learn from
    assert not bool(norm.initialized) and torch.isfinite(out).all()
    norm(torch.randn(4, 2, 3, 3))
    assert bool(norm.initialized) and (norm.running_var > 0.1).all()


def test_channel_norm_equalizes_dominant_channels():
    # with raw features a projection is dominated by the large channel; after conditioning it is not
    torch.manual_seed(0)
    x = torch.randn(4, 2, 8, 8) * torch.tensor([100.0, 1.0]).view(1, 2, 1, 1)
    cond = FeatureConditioning(2, 1, 'channel_norm', sn=False).train()
    normed = cond.norm(x)
    ratio = normed[:, 0].std() / normed[:, 1].std()
    assert 0.8 < float(ratio) < 1.25
    assert isinstance(FeatureConditioning(2, 1, 'none').norm, torch.nn.Identity)


def test_config_round_trip_and_validation():
    cfg = DiscriminatorConfig(num_classes=7, out_indices=[1, 2, 3], decoder_channels=[8, 16, 32])
    assert cfg.out_indices == (1, 2, 3) and cfg.decoder_channels == (8, 16, 32)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert DiscriminatorConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match='bogus'):
        DiscriminatorConfig.from_dict({**data, 'bogus': 1})
    with pytest.raises(ValueError, match='feature_conditioning'):
        DiscriminatorConfig(num_classes=3, feature_conditioning='layer_norm')
    assert DiscriminatorConfig(num_classes=3).stage_widths(5) == [64, 128, 256, 256, 256]
    with pytest.raises(ValueError, match='3 entries.*5 stages'):
        DiscriminatorConfig(num_classes=3, decoder_channels=(8, 16, 32)).stage_widths(5)


def test_out_indices_select_stages(lite0_sd):
    d = _make(lite0_sd, out_indices=(1, 2, 3, 4), decoder_channels=(8, 8, 16, 16))
    assert d.backbone.reductions == [4, 8, 16, 32]
    assert d(_images(1, 32, 32)).shape == (1, NUM_CLASSES + 1, 32, 32)


def test_clear_errors():
    with pytest.raises(ValueError, match='Unknown backbone'):
        DPSIMSDiscriminator(DiscriminatorConfig(num_classes=2, backbone='convnext_lage'))
    with pytest.raises(ValueError, match="No offline weights for backbone 'resnet50'"):
        DPSIMSDiscriminator(DiscriminatorConfig(num_classes=2, backbone='resnet50'))


def test_convnext_large_builds_and_runs_with_random_weights():
    # the paper's backbone: no offline weights, random init here (weights=None downloads nothing)
    torch.manual_seed(0)
    d = DPSIMSDiscriminator(DiscriminatorConfig(num_classes=3, backbone='convnext_large', weights=None))
    assert d.backbone.channels == [192, 384, 768, 1536] and d.backbone.reductions == [4, 8, 16, 32]
    assert sum(p.numel() for p in d.backbone.parameters()) > 190e6
    with torch.no_grad():
        assert d(_images(1, 64, 64)).shape == (1, 4, 64, 64)


def test_offline_mobilenetv2_backbone_trains_the_decoder():
    # the second backbone with offline weights: a real ImageNet MobileNetV2 under the same UNet decoder
    torch.manual_seed(0)
    d = DPSIMSDiscriminator(DiscriminatorConfig(num_classes=NUM_CLASSES, backbone='mobilenetv2_100',
                                                decoder_channels=16, high_res_channels=8),
                            backbone_weights='offline')
    assert d.backbone.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    out = d(_images(2, 48, 80))
    assert out.shape == (2, NUM_CLASSES + 1, 48, 80)
    discriminator_adversarial_loss(out, d(_images(2, 48, 80, seed=1)), _labels(2, 48, 80)).backward()
    assert all(p.grad is None for p in d.backbone.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.trainable_parameters())
