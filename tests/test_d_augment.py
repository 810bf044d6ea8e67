"""Differentiable augmentation of D's inputs (train_gan.d_augment) and its use in the GAN's training step; the model's
typed settings of it and of the loss terms (DAugmentConfig, LossConfig)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict

from train_gan.d_augment import (
    AdaptiveProbability,
    apply_geometry,
    augment_batch,
    overfitting_signal,
    sample_params,
)
from train_gan.model import DPSIMSGAN, DAugmentConfig, LossConfig


def _positions(b: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose 3 channels encode (y, x, sample) and label maps encoding y*w+x mod 200 (to follow pixels)."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    images = torch.stack([ys.float() / h, xs.float() / w, torch.zeros(h, w)]).expand(b, 3, h, w).clone()
    images[:, 2] = torch.arange(b).float().view(b, 1, 1) / b
    labels = ((ys * w + xs) % 200).expand(b, h, w).clone()
    return images, labels


def test_p_zero_is_the_identity():
    images, labels = _positions(3, 16, 16)
    params = sample_params(3, 16, 16, 0.0, generator=torch.Generator().manual_seed(0))
    out, out_labels, valid = augment_batch(images, labels, params)
    assert torch.equal(out, images) and torch.equal(out_labels, labels) and bool((valid == 1).all())


def test_translation_moves_image_and_label_map_together():
    b, h, w = 6, 16, 24
    images, labels = _positions(b, h, w)
    params = sample_params(b, h, w, 1.0, ops=("translation",), generator=torch.Generator().manual_seed(3))
    assert (params.shift_y != 0).any() and (params.shift_x != 0).any()
    out, out_labels, valid = augment_batch(images, labels, params, ignore_index=255)
    for i in range(b):
        dy, dx = int(params.shift_y[i]), int(params.shift_x[i])
        for y in range(h):
            for x in range(w):
                sy, sx = y - dy, x - dx
                if 0 <= sy < h and 0 <= sx < w:
                    assert torch.equal(out[i, :, y, x], images[i, :, sy, sx])
                    assert out_labels[i, y, x] == labels[i, sy, sx] and valid[i, y, x] == 1
                else:
                    assert bool((out[i, :, y, x] == 0).all()) and out_labels[i, y, x] == 255 and valid[i, y, x] == 0


def test_cutout_blanks_one_half_size_square_and_ignores_it():
    b, h, w = 4, 16, 16
    images, labels = _positions(b, h, w)
    params = sample_params(b, h, w, 1.0, ops=("cutout",), generator=torch.Generator().manual_seed(1))
    out, out_labels, valid = augment_batch(images + 2.0, labels, params)  # +2: no input pixel is 0
    for i in range(b):
        y0, y1, x0, x1 = params.cutout[i].tolist()
        assert 0 < (y1 - y0) * (x1 - x0) <= 64
        blank = out[i].abs().sum(0) == 0
        assert int(blank.sum()) == (y1 - y0) * (x1 - x0)
        assert bool(blank[y0:y1, x0:x1].all())
        assert bool((out_labels[i][blank] == 255).all()) and bool((valid[i][blank] == 0).all())


def test_one_draw_is_applied_identically_to_every_tensor_of_a_sample():
    """Real, fake, LabelMix image and mask of one sample get the same geometry (LabelMix's target stays valid)."""
    b, h, w = 4, 16, 16
    real, labels = _positions(b, h, w)
    fake = torch.rand(b, 3, h, w)
    mask = (torch.rand(b, 1, h, w) > 0.5).float()
    mixed = torch.where(mask.bool(), real, fake)
    params = sample_params(b, h, w, 1.0, generator=torch.Generator().manual_seed(5))
    real_a, fake_a, mixed_a = (augment_batch(x, labels, params)[0] for x in (real, fake, mixed))
    mask_a = apply_geometry(mask, params, 0.0)
    # Colour is per-image (channel/pixel means), so compare geometry: the mix of the augmented parts is the
    # augmented mix wherever colour statistics do not enter, i.e. with colour off.
    geo = sample_params(b, h, w, 1.0, ops=("translation", "cutout"), generator=torch.Generator().manual_seed(5))
    real_g, fake_g, mixed_g = (augment_batch(x, labels, geo)[0] for x in (real, fake, mixed))
    mask_g = apply_geometry(mask, geo, 0.0)
    assert torch.equal(torch.where(mask_g.bool(), real_g, fake_g), mixed_g)
    assert real_a.shape == fake_a.shape == mixed_a.shape and mask_a.shape == mask.shape


def test_colour_changes_images_and_passes_gradients():
    images = torch.rand(4, 3, 8, 8, requires_grad=True)
    labels = torch.zeros(4, 8, 8, dtype=torch.long)
    params = sample_params(4, 8, 8, 1.0, ops=("colour",), generator=torch.Generator().manual_seed(0))
    out, out_labels, _ = augment_batch(images, labels, params)
    assert not torch.allclose(out, images) and torch.equal(out_labels, labels)
    out.sum().backward()
    assert images.grad is not None and bool(torch.isfinite(images.grad).all()) and images.grad.abs().sum() > 0


def test_unknown_operation_is_refused():
    with pytest.raises(ValueError, match="unknown augmentation operations"):
        sample_params(1, 8, 8, 1.0, ops=("rotate",))


def test_overfitting_signal_and_adaptive_probability():
    labels = torch.tensor([[[0, 1], [255, 1]]])
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1, 0, 0] = 2.0  # class 0 pixel: confidently real
    logits[0, 0, 0, 1] = 2.0  # class 1 pixel: called fake
    logits[0, 2, 1, 1] = 1.0  # class 1 pixel: real
    total, count = overfitting_signal(logits, labels)
    assert float(count) == 3 and float(total) == 1.0  # +1 -1 +1; the ignored pixel does not count
    ada = AdaptiveProbability(target=0.6, interval=4, speed_images=80)
    p = torch.tensor(0.0)
    assert not ada.due(0) and ada.due(3)
    ada.update(p, 0.9, batch=2)  # overfitting: p up by 2 * 4 / 80
    assert float(p) == pytest.approx(0.1)
    ada.update(p, 0.1, batch=2)
    ada.update(p, 0.1, batch=2)
    assert float(p) == 0.0  # clamped


def _gan(d_augment, loss=None):
    torch.manual_seed(0)
    return DPSIMSGAN(generator=dict(preset="tiny"),
                     discriminator=dict(decoder_channels=8, max_decoder_channels=16, high_res_channels=8),
                     loss=loss or dict(nce_patches=16), d_augment=d_augment)


def _wrappers(model):
    return OptimWrapperDict(
        generator=OptimWrapper(torch.optim.Adam(model.generator.parameters(), 1e-4)),
        discriminator=OptimWrapper(torch.optim.Adam(list(model.discriminator.trainable_parameters()), 4e-4)))


def test_training_step_with_diffaugment_and_ada():
    data = dict(image=torch.randint(0, 255, (2, 3, 64, 64)).float(), label=torch.randint(0, 10, (2, 64, 64)))
    plain, augmented = _gan(None), _gan(dict(p=1.0))
    out_plain = plain.train_step(data, _wrappers(plain))
    out_aug = augmented.train_step(data, _wrappers(augmented))
    assert all(torch.isfinite(v) for v in out_aug.values())
    assert float(out_aug["loss_d_adv"]) != pytest.approx(float(out_plain["loss_d_adv"]))  # D saw other images
    ada = _gan(dict(p=0.0, adaptive=True, interval=1, speed_images=10))
    wrappers = _wrappers(ada)
    for _ in range(2):
        out = ada.train_step(data, wrappers)
    assert "augment_p" in out and "augment_p" in ada.state_dict()  # checkpointed: exact resume
    assert 0.0 <= float(ada.augment_p) <= 1.0
    with pytest.raises(ValueError, match="unknown d_augment"):
        _gan(dict(prob=0.5))


# --- the model's typed settings: LossConfig, DAugmentConfig ------------------------------------------------------

# The defaults of the dicts these dataclasses replaced (DEFAULT_LOSS_WEIGHTS and DPSIMSGAN's d_augment parsing).
_PREVIOUS_LOSS_DEFAULTS = dict(focal_gamma=2.0, labelmix=10.0, patch_nce=1.0, nce_patches=256, nce_temperature=0.07,
                               diversity=1.0, diversity_max_ratio=None, colour_match=0.0)


def test_loss_config_defaults_match_the_previous_ones():
    assert dataclasses.asdict(LossConfig()) == _PREVIOUS_LOSS_DEFAULTS
    assert LossConfig.from_dict(None) == LossConfig.from_dict({}) == LossConfig()
    flat = dict(focal_gamma=0, labelmix=0.0, diversity=0.3, diversity_max_ratio=0.28)  # as a config's loss=dict(...)
    assert dataclasses.asdict(LossConfig.from_dict(flat)) == {**_PREVIOUS_LOSS_DEFAULTS, **flat}
    with pytest.raises(dataclasses.FrozenInstanceError):
        LossConfig().labelmix = 1.0
    assert _gan(None, loss=LossConfig(nce_patches=16)).loss_config == LossConfig.from_dict(dict(nce_patches=16))


def test_loss_config_refuses_unknown_keys_by_name():
    with pytest.raises(ValueError, match=r"unknown loss settings \['gama', 'label_mix'\]; known: \[.*'focal_gamma'"):
        LossConfig.from_dict(dict(gama=1.0, label_mix=1.0, diversity=0.5))
    with pytest.raises(ValueError, match=r"unknown loss settings \['nce_patch'\]"):
        _gan(None, loss=dict(nce_patch=16))


def test_d_augment_config_defaults_match_the_previous_ones():
    off = DAugmentConfig.from_dict(None)
    assert (off.ops, off.p, off.adaptive, off.target, off.interval, off.speed_images) == (
        ("colour", "translation", "cutout"), 0.0, False, 0.6, 4, 20_000.0)
    assert DAugmentConfig.from_dict({}) == off and off.controller() is None
    assert DAugmentConfig.from_dict(dict(ops=["colour"])) == DAugmentConfig(ops=("colour",), p=1.0)  # given: p = 1
    assert DAugmentConfig.from_dict(dict(adaptive=True, p=0.0)).controller() is not None
    model = _gan(dict(ops=["cutout"], adaptive=True, target=0.5, interval=2, speed_images=100))
    assert model.d_augment_config.ops == ("cutout",) and float(model.augment_p) == 1.0
    assert vars(model.augment_adaptive) == dict(target=0.5, interval=2, speed_images=100)
    plain = _gan(None)
    assert float(plain.augment_p) == 0.0 and plain.augment_adaptive is None


def test_d_augment_config_refuses_unknown_keys_and_operations_by_name():
    with pytest.raises(ValueError, match=r"unknown d_augment settings \['prob'\]; known: \[.*'speed_images'"):
        DAugmentConfig.from_dict(dict(prob=0.5, p=1.0))
    with pytest.raises(ValueError, match=r"unknown augmentation operations \['rotate'\]"):
        DAugmentConfig.from_dict(dict(ops=("colour", "rotate")))
    with pytest.raises(ValueError, match="unknown augmentation operations"):
        _gan(dict(ops=("flip",)))  # at construction, not at the first step


def test_the_data_preprocessor_owns_the_image_range_and_its_inverse():
    """GANDataPreprocessor maps a batch's uint8 images to [-1, 1] (labels untouched); destruct maps back exactly;
    another preprocessor type is refused by name."""
    from mmengine.model import BaseDataPreprocessor

    from train_gan.model import GANDataPreprocessor

    model = _gan(None)
    assert isinstance(model.data_preprocessor, GANDataPreprocessor)
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 5, (2, 8, 8))
    data = model.data_preprocessor({"image": images, "label": labels}, True)
    assert data["image"].dtype == torch.float32 and float(data["image"].min()) >= -1 and float(data["image"].max()) <= 1
    assert torch.equal(data["label"], labels)
    assert torch.equal(GANDataPreprocessor.destruct(data["image"]), images)
    with pytest.raises(TypeError, match="GANDataPreprocessor"):
        DPSIMSGAN(generator=dict(preset="tiny"), data_preprocessor=BaseDataPreprocessor(),
                  discriminator=dict(decoder_channels=8, max_decoder_channels=16, high_res_channels=8))
