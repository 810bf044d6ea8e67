"""Identity tests for train_gan.losses (CPU, small tensors)."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from train_gan.losses import (
    class_balance_weights,
    colour_distribution_loss,
    discriminator_adversarial_loss,
    diversity_loss,
    generator_adversarial_loss,
    labelmix,
    labelmix_loss,
    patch_nce_loss,
    pixelwise_focal_loss,
)

IGNORE = 255


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _labels(b: int = 2, h: int = 8, w: int = 8, c: int = 4, seed: int = 0, ignore_frac: float = 0.1):
    g = _gen(seed)
    labels = torch.randint(0, c, (b, h, w), generator=g)
    ignore = torch.rand(b, h, w, generator=g) < ignore_frac
    return labels.masked_fill(ignore, IGNORE)


# --- class balancing -------------------------------------------------------------------------------------


def test_class_weights_ignore_zero_and_mean_one():
    labels = _labels()
    w = class_balance_weights(labels, num_classes=4, ignore_index=IGNORE)
    assert w.shape == labels.shape and w.dtype == torch.float32
    assert torch.all(w[labels == IGNORE] == 0)
    assert torch.all(w[labels != IGNORE] > 0)
    # Weights average to 1 over labeled pixels, each present class carries the same total mass.
    torch.testing.assert_close(w[labels != IGNORE].mean(), torch.tensor(1.0))
    masses = torch.stack([w[labels == c].sum() for c in range(4)])
    torch.testing.assert_close(masses, masses.mean().expand(4))


def test_class_weights_uniform_labels_are_one():
    labels = torch.full((2, 5, 7), 3)
    w = class_balance_weights(labels, num_classes=6)
    assert torch.equal(w, torch.ones_like(w))


def test_class_weights_three_to_one():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 0, :] = 1  # 12 pixels of class 0, 4 of class 1
    w = class_balance_weights(labels, num_classes=2)
    # w_c = 16 / (count_c * 2): 16/24 and 16/8.
    torch.testing.assert_close(w[labels == 0], torch.full((12,), 2.0 / 3.0))
    torch.testing.assert_close(w[labels == 1], torch.full((4,), 2.0))
    # Ignored pixels do not count in N: adding them leaves the weights unchanged.
    padded = torch.cat([labels, torch.full((1, 4, 4), IGNORE)], dim=1)
    w_pad = class_balance_weights(padded, num_classes=2)
    torch.testing.assert_close(w_pad[:, :4], w)
    assert torch.all(w_pad[:, 4:] == 0)


def test_class_weights_all_ignored_is_zero():
    w = class_balance_weights(torch.full((1, 3, 3), IGNORE), num_classes=3)
    assert torch.equal(w, torch.zeros(1, 3, 3))


# --- focal loss --------------------------------------------------------------------------------------------


def test_focal_gamma0_equals_class_balanced_ce_exactly():
    g = _gen(1)
    logits = torch.randn(2, 5, 8, 8, generator=g)
    labels = _labels(c=4, seed=1)
    target = torch.where(labels != IGNORE, labels + 1, torch.zeros_like(labels))
    weights = class_balance_weights(labels, num_classes=4)
    expected = (F.cross_entropy(logits, target, reduction="none") * weights).mean()
    assert torch.equal(pixelwise_focal_loss(logits, target, weights, gamma=0.0), expected)


def test_focal_gamma_downweights_confident_pixels():
    # Two pixels: one confidently right (p_t ~ 0.98), one poorly classified (p_t ~ 0.27).
    logits = torch.tensor([[4.0, 0.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2)
    target = torch.zeros(1, 1, 2, dtype=torch.long)
    ones = torch.ones(1, 1, 2)
    ce = F.cross_entropy(logits, target, reduction="none")
    confident = torch.tensor([[[1.0, 0.0]]])
    hard = torch.tensor([[[0.0, 1.0]]])
    for gamma in (1.0, 2.0):
        ratio_conf = pixelwise_focal_loss(logits, target, confident, gamma) / (ce * confident).mean()
        ratio_hard = pixelwise_focal_loss(logits, target, hard, gamma) / (ce * hard).mean()
        assert ratio_conf < 0.05 < ratio_hard < 1.0
    # The total loss decreases monotonically with gamma.
    vals = [pixelwise_focal_loss(logits, target, ones, gm).item() for gm in (0.0, 0.5, 1.0, 2.0)]
    assert vals == sorted(vals, reverse=True)


# --- adversarial losses ------------------------------------------------------------------------------------


def _perfect_logits(labels: torch.Tensor, num_classes: int, real: bool, scale: float = 10.0):
    target = torch.where(labels != IGNORE, labels + 1, torch.zeros_like(labels)) if real else \
        torch.zeros_like(labels)
    return scale * F.one_hot(target, num_classes + 1).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_d_loss_perfect_lower_than_random(gamma: float):
    c = 4
    labels = _labels(c=c, seed=2)
    g = _gen(2)
    perfect = discriminator_adversarial_loss(
        _perfect_logits(labels, c, True), _perfect_logits(labels, c, False), labels, gamma=gamma)
    rand = discriminator_adversarial_loss(
        torch.randn(2, c + 1, 8, 8, generator=g), torch.randn(2, c + 1, 8, 8, generator=g), labels,
        gamma=gamma)
    assert perfect < 1e-3 < rand
    # A D that swaps real and fake is worst.
    swapped = discriminator_adversarial_loss(
        _perfect_logits(labels, c, False), _perfect_logits(labels, c, True), labels, gamma=gamma)
    assert swapped > rand


def test_d_loss_gamma0_matches_oasis_formula():
    c = 3
    labels = _labels(c=c, seed=3)
    g = _gen(3)
    lr, lf = torch.randn(2, c + 1, 8, 8, generator=g), torch.randn(2, c + 1, 8, 8, generator=g)
    target = torch.where(labels != IGNORE, labels + 1, torch.zeros_like(labels))
    w = class_balance_weights(labels, c)
    expected = (F.cross_entropy(lr, target, reduction="none") * w).mean() + \
        F.cross_entropy(lf, torch.zeros_like(labels))
    torch.testing.assert_close(discriminator_adversarial_loss(lr, lf, labels, gamma=0.0), expected)


def test_g_loss_fooling_d_is_lower_and_has_grad():
    c = 4
    labels = _labels(c=c, seed=4)
    fooled = generator_adversarial_loss(_perfect_logits(labels, c, True), labels)
    caught = generator_adversarial_loss(_perfect_logits(labels, c, False), labels)
    assert fooled < 1e-3 < caught
    logits = torch.randn(2, c + 1, 8, 8, generator=_gen(4), requires_grad=True)
    generator_adversarial_loss(logits, labels).backward()
    assert torch.isfinite(logits.grad).all()
    # Ignored pixels have weight 0, hence no gradient.
    assert torch.all(logits.grad.permute(0, 2, 3, 1)[labels == IGNORE] == 0)


# --- LabelMix ----------------------------------------------------------------------------------------------


def test_labelmix_mask_binary_constant_per_class_and_mix_exact():
    labels = _labels(b=3, h=16, w=16, c=6, seed=5)
    g = _gen(5)
    real, fake = torch.randn(3, 3, 16, 16, generator=g), torch.randn(3, 3, 16, 16, generator=g)
    mixed, mask = labelmix(real, fake, labels, generator=_gen(6))
    assert mask.shape == (3, 1, 16, 16) and mask.dtype == real.dtype
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    for b in range(3):
        for c in labels[b].unique():
            assert mask[b, 0][labels[b] == c].unique().numel() == 1
    m = mask.bool().expand_as(real)
    assert torch.equal(mixed[m], real[m]) and torch.equal(mixed[~m], fake[~m])


def test_labelmix_reproducible_and_varies():
    labels = _labels(b=4, h=8, w=8, c=8, seed=7, ignore_frac=0.0)
    real, fake = torch.ones(4, 3, 8, 8), torch.zeros(4, 3, 8, 8)
    _, m1 = labelmix(real, fake, labels, generator=_gen(11))
    _, m2 = labelmix(real, fake, labels, generator=_gen(11))
    assert torch.equal(m1, m2)
    masks = [labelmix(real, fake, labels, generator=_gen(s))[1] for s in range(5)]
    assert any(not torch.equal(masks[0], m) for m in masks[1:])
    assert 0 < torch.stack(masks).mean() < 1  # both real and fake regions occur


def test_labelmix_loss_zero_for_consistent_d_and_positive_otherwise():
    labels = _labels(c=4, seed=8)
    g = _gen(8)
    _, mask = labelmix(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), labels, generator=g)
    lr, lf = torch.randn(2, 5, 8, 8, generator=g), torch.randn(2, 5, 8, 8, generator=g)
    consistent = mask * lr + (1 - mask) * lf
    assert labelmix_loss(consistent, lr, lf, mask).item() == 0.0
    assert labelmix_loss(torch.randn(2, 5, 8, 8, generator=g), lr, lf, mask) > 0.1


# --- PatchNCE ----------------------------------------------------------------------------------------------


def _feats(seed: int = 9) -> list[torch.Tensor]:
    g = _gen(seed)
    return [torch.randn(2, 16, 8, 8, generator=g), torch.randn(2, 32, 4, 4, generator=g)]


def test_patch_nce_identical_low_shuffled_high():
    real = _feats()
    same = patch_nce_loss([f.clone() for f in real], real, num_patches=32, generator=_gen(0))
    # Shuffling spatial positions breaks the location correspondence.
    shuffled = []
    for f in real:
        perm = torch.randperm(f.shape[2] * f.shape[3], generator=_gen(1))
        shuffled.append(f.flatten(2)[:, :, perm].view_as(f))
    shuf = patch_nce_loss(shuffled, real, num_patches=32, generator=_gen(0))
    assert same < 0.1 < shuf
    assert shuf > 1.0


def test_patch_nce_gradient_only_on_fake_and_reproducible():
    real = [f.requires_grad_() for f in _feats(10)]
    fake = [f.requires_grad_() for f in _feats(11)]
    loss = patch_nce_loss(fake, real, num_patches=8, generator=_gen(3))
    loss.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in fake)
    assert all(f.grad is None for f in real)
    again = patch_nce_loss(fake, real, num_patches=8, generator=_gen(3))
    assert torch.equal(loss.detach(), again.detach())


def test_patch_nce_num_patches_larger_than_map():
    real = _feats(12)
    loss = patch_nce_loss(_feats(13), real, num_patches=1000)  # capped at H*W per level
    assert torch.isfinite(loss)


# --- diversity ---------------------------------------------------------------------------------------------


def test_diversity_loss_decreases_as_outputs_diverge_and_finite_for_identical():
    g = _gen(14)
    img = torch.randn(2, 3, 8, 8, generator=g)
    direction = torch.randn(2, 3, 8, 8, generator=g)
    za, zb = torch.randn(2, 64, generator=g), torch.randn(2, 64, generator=g)
    vals = [diversity_loss(img, img + s * direction, za, zb).item() for s in (0.0, 0.1, 1.0, 10.0)]
    assert all(a > b for a, b in itertools.pairwise(vals))
    assert vals[0] == pytest.approx(1e5)  # identical outputs: 1 / eps, finite
    # Identical noise is guarded too.
    assert torch.isfinite(diversity_loss(img, img, za, za))


def test_diversity_loss_formula_and_grad():
    # Two samples, worked by hand. Sample 0: image distance mean|0 - (1, 3, 0, 0)| = 1, noise distance
    # mean|(0, 0) - (2, -2)| = 2, ratio 1/2; sample 1: image distance 2, noise distance 1, ratio 2.
    # Loss: mean(1 / (1/2), 1 / 2) = 1.25 (a ratio of batch means, 1.5 / 1.5, would give 1.0).
    a = torch.zeros(2, 1, 2, 2, requires_grad=True)
    b = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]], [[[2.0, -2.0], [2.0, -2.0]]]])
    za, zb = torch.zeros(2, 2), torch.tensor([[2.0, -2.0], [1.0, 1.0]])
    loss = diversity_loss(a, b, za, zb)
    assert loss.item() == pytest.approx(1.25, rel=1e-4)
    # d loss / d a = -(1/B) / ratio^2 * sign(a - b) / (pixels * noise distance): sample 0: -(1/2) * 4 / (4 * 2) =
    # -1/4 per unit of sign(a - b) = (-1, -1, 0, 0); sample 1: -(1/2) * (1/4) / (4 * 1) = -1/32, sign (-1, 1, -1, 1).
    loss.backward()
    expected = torch.tensor([[[[0.25, 0.25], [0.0, 0.0]]], [[[1 / 32, -1 / 32], [1 / 32, -1 / 32]]]])
    torch.testing.assert_close(a.grad, expected, rtol=1e-3, atol=1e-7)
    # The gradient points towards the other sample, so a descent step pushes the samples apart and lowers the loss.
    assert (a.grad * (a - b)).detach().le(0).all()
    stepped = (a - 0.1 * a.grad).detach()
    assert diversity_loss(stepped, b, za, zb) < loss

    # Invariances (random batch): which sample is "a", the order of the batch, a shared offset, a common scale of
    # images and noise; twice the image distance halves each term.
    g = _gen(15)
    x, y = torch.randn(3, 3, 4, 4, generator=g), torch.randn(3, 3, 4, 4, generator=g)
    zx, zy = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    base = diversity_loss(x, y, zx, zy)
    perm = torch.tensor([2, 0, 1])
    offset = torch.randn(1, 3, 4, 4, generator=g)
    for variant in (diversity_loss(y, x, zy, zx), diversity_loss(x[perm], y[perm], zx[perm], zy[perm]),
                    diversity_loss(x + offset, y + offset, zx - 3.0, zy - 3.0),
                    diversity_loss(5 * x, 5 * y, 5 * zx, 5 * zy)):
        torch.testing.assert_close(variant, base)
    one = diversity_loss(x[:1], y[:1], zx[:1], zy[:1])
    torch.testing.assert_close(diversity_loss(x[:1], x[:1] + 2 * (y[:1] - x[:1]), zx[:1], zy[:1]), one / 2,
                               rtol=1e-4, atol=0)


def test_capped_diversity_loss_stops_pushing_beyond_the_cap():
    from train_gan.losses import diversity_loss

    noise_a, noise_b = torch.zeros(2, 4), torch.ones(2, 4)  # noise distance 1
    images_a = torch.zeros(2, 3, 4, 4)
    images_b = torch.full((2, 3, 4, 4), 0.5, requires_grad=True)  # ratio 0.5
    capped = diversity_loss(images_a, images_b, noise_a, noise_b, max_ratio=0.25)
    capped.backward()
    assert capped.item() == pytest.approx(1 / (0.25 + 1e-5)) and images_b.grad.abs().sum() == 0
    images_c = torch.full((2, 3, 4, 4), 0.1, requires_grad=True)  # ratio 0.1: below the cap, pushed apart
    below = diversity_loss(images_a, images_c, noise_a, noise_b, max_ratio=0.25)
    below.backward()
    assert below.item() == pytest.approx(diversity_loss(images_a, images_c.detach(), noise_a, noise_b).item())
    assert images_c.grad.sum() < 0  # increasing the distance lowers the loss


# --- colour-distribution matching ------------------------------------------------------------------------


def test_colour_loss_is_zero_for_pixels_moved_within_their_class_and_positive_for_a_shift():
    labels = _labels(b=2, h=8, w=8, c=3, seed=16)
    real = torch.rand(2, 3, 8, 8, generator=_gen(17)) * 2 - 1
    # Swap two pixels of one class between images: the same per-class multiset, so nothing to match.
    where = (labels == 1).nonzero()
    (b0, y0, x0), (b1, y1, x1) = where[0].tolist(), where[-1].tolist()
    moved = real.clone()
    moved[b0, :, y0, x0], moved[b1, :, y1, x1] = real[b1, :, y1, x1], real[b0, :, y0, x0]
    assert b0 != b1 and colour_distribution_loss(moved, real, labels, IGNORE).item() == pytest.approx(0, abs=1e-6)
    # Ignored pixels do not count, whatever their values.
    scrambled = real.masked_fill((labels == IGNORE).unsqueeze(1), 5.0)
    assert colour_distribution_loss(scrambled, real, labels, IGNORE).item() == pytest.approx(0, abs=1e-6)
    # A constant shift of one channel: the loss is that shift / 3 channels.
    shifted = real.clone()
    shifted[:, 0] += 0.3
    assert colour_distribution_loss(shifted, real, labels, IGNORE).item() == pytest.approx(0.1, abs=1e-5)


def test_colour_loss_weighs_every_class_equally_and_has_gradient():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 0, 0] = 1  # class 1 has one pixel, class 0 fifteen
    real = torch.zeros(1, 3, 4, 4)
    fake = torch.zeros(1, 3, 4, 4, requires_grad=True)
    small_class_off = fake + (labels == 1).unsqueeze(1) * 0.6  # only the 1-pixel class is wrong, by 0.6
    loss = colour_distribution_loss(small_class_off, real, labels)
    assert loss.item() == pytest.approx(0.3)  # half the weight (one of two classes), not 1/16 of it
    loss.backward()
    assert fake.grad[0, :, 0, 0].abs().sum() > 0 and fake.grad[0, :, 1:, :].abs().sum() == 0
    with pytest.raises(ValueError, match="differ"):
        colour_distribution_loss(real, real[:, :, :2], labels)
