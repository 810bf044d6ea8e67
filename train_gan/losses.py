"""Training losses for the DP-SIMS GAN, as small pure functions.

Conventions (OASIS):
- Discriminator output: per-pixel logits ``[B, C+1, H, W]``; channel 0 = "fake", channel ``c+1`` = real
  pixel of class ``c``.
- Label maps: ``LongTensor [B, H, W]`` with contiguous ids ``0..C-1`` and ``ignore_index`` (default 255)
  for unlabeled pixels.

Normalization of the adversarial losses: every per-pixel term is averaged over *all* ``B*H*W`` pixels
(ignored pixels contribute 0 through their zero weight), as OASIS does with ``torch.mean``. Because the
class-balancing weights average to 1 over labeled pixels, the loss scale does not depend on class counts.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

# Focal exponent used by the adversarial losses when none is given. The DP-SIMS paper introduces the
# pixel-wise focal loss without (to our knowledge) stating gamma in the text; 2.0 is the focal-loss default
# of Lin et al. (ICCV 2017). gamma=0 gives back plain OASIS.
DEFAULT_FOCAL_GAMMA: float = 2.0


def class_balance_weights(labels: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """Per-pixel OASIS class-balancing weights, computed over the whole batch.

    ``w_c = N / (count_c * K)`` where ``N`` is the number of labeled pixels in the batch, ``count_c`` the
    pixels of class ``c`` and ``K`` the number of classes present. Ignored pixels get weight 0.

    With this choice ``sum_pixels w = N`` (each present class gets total mass ``N / K``), i.e. the weights
    average to 1 over labeled pixels; uniform labels give weight 1 everywhere. (OASIS uses the total pixel
    count including its "don't care" class for ``N``; we exclude ignored pixels so that the weights are
    invariant to how much of the image is unlabeled.)

    Args:
        labels: LongTensor ``[B, H, W]`` with ids in ``0..num_classes-1`` or ``ignore_index``.
        num_classes: number of semantic classes ``C``.
        ignore_index: id of unlabeled pixels.

    Returns:
        Float tensor ``[B, H, W]`` of weights (float32).
    """
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels))  # ignore -> any valid id; masked below
    counts = torch.bincount(safe[valid], minlength=num_classes).float()  # [C]
    num_present = (counts > 0).sum().clamp_min(1)
    num_labeled = counts.sum()
    # Absent classes would divide by zero; they are never gathered, so any finite value works.
    coeff = num_labeled / (counts.clamp_min(1) * num_present)
    return coeff[safe] * valid.float()


def pixelwise_focal_loss(logits: Tensor, target: Tensor, weights: Tensor, gamma: float = 0.0) -> Tensor:
    """Weighted pixel-wise focal cross-entropy over the ``C+1`` discriminator channels.

    ``loss = mean_{b,h,w}( weights * (1 - p_t)^gamma * (-log p_t) )`` with ``p_t = softmax(logits)[target]``
    and the mean over all ``B*H*W`` pixels (zero-weight pixels included in the count, as in OASIS).
    ``gamma = 0`` is exactly ``(F.cross_entropy(logits, target, reduction='none') * weights).mean()``.

    Args:
        logits: ``[B, C+1, H, W]`` discriminator logits.
        target: LongTensor ``[B, H, W]`` with values in ``0..C`` (no ignore index: zero the weight instead).
        weights: ``[B, H, W]`` per-pixel weights.
        gamma: focusing exponent; larger values down-weight confidently classified pixels.

    Returns:
        Scalar loss.
    """
    ce = F.cross_entropy(logits, target, reduction="none")  # [B, H, W] = -log p_t
    if gamma != 0.0:
        # p_t = exp(-ce) reuses the stable log-softmax inside cross_entropy; gradient flows through it
        # as in the standard focal loss.
        ce = (1.0 - torch.exp(-ce)).clamp_min(0.0).pow(gamma) * ce
    return (ce * weights).mean()


def _real_targets(labels: Tensor, ignore_index: int) -> Tensor:
    """Map class ids to D channels ``c+1``; ignored pixels go to channel 0 (their weight is 0 anyway)."""
    return torch.where(labels != ignore_index, labels + 1, torch.zeros_like(labels))


def discriminator_adversarial_loss(
    logits_real: Tensor,
    logits_fake: Tensor,
    labels: Tensor,
    gamma: float = DEFAULT_FOCAL_GAMMA,
    ignore_index: int = 255,
    valid: Tensor | None = None,
) -> Tensor:
    """OASIS (C+1)-class discriminator loss with the focal modulation.

    ``L_D = focal(D(x_real), labels+1, w_balance) + focal(D(x_fake), 0, 1)``: real pixels are pushed to
    their class channel with class-balancing weights; every generated pixel is pushed to the "fake"
    channel with unit weight (OASIS applies no balancing to the fake term, ignored pixels included).

    Args:
        logits_real: ``[B, C+1, H, W]`` D logits on real images.
        logits_fake: ``[B, C+1, H, W]`` D logits on generated images (typically from detached G output).
        labels: LongTensor ``[B, H, W]`` label maps of the real images.
        gamma: focal exponent.
        ignore_index: id of unlabeled pixels.
        valid: optional ``[B, H, W]`` 0/1 mask of pixels that count in both terms (0 where an augmentation of D's
            inputs invented the pixel; see :mod:`train_gan.d_augment`). ``None``: every pixel counts.

    Returns:
        Scalar loss (sum of the real and fake terms).
    """
    num_classes = logits_real.shape[1] - 1
    weights = class_balance_weights(labels, num_classes, ignore_index).to(logits_real.dtype)
    loss_real = pixelwise_focal_loss(logits_real, _real_targets(labels, ignore_index), weights, gamma)
    fake_target = torch.zeros(logits_fake.shape[:1] + logits_fake.shape[2:], dtype=torch.long,
                              device=logits_fake.device)
    fake_weights = torch.ones(fake_target.shape, dtype=logits_fake.dtype, device=logits_fake.device)
    if valid is not None:
        fake_weights = fake_weights * valid.to(fake_weights.dtype)
    loss_fake = pixelwise_focal_loss(logits_fake, fake_target, fake_weights, gamma)
    return loss_real + loss_fake


def generator_adversarial_loss(
    logits_fake: Tensor,
    labels: Tensor,
    gamma: float = DEFAULT_FOCAL_GAMMA,
    ignore_index: int = 255,
) -> Tensor:
    """OASIS generator loss: generated pixels should be classified as their (real) class ``c+1``.

    ``L_G = focal(D(G(z, labels)), labels+1, w_balance)`` with the same class-balancing weights as the real
    term of the discriminator loss.

    Args:
        logits_fake: ``[B, C+1, H, W]`` D logits on generated images (not detached).
        labels: LongTensor ``[B, H, W]`` label maps the images were generated from.
        gamma: focal exponent.
        ignore_index: id of unlabeled pixels.

    Returns:
        Scalar loss.
    """
    num_classes = logits_fake.shape[1] - 1
    weights = class_balance_weights(labels, num_classes, ignore_index).to(logits_fake.dtype)
    return pixelwise_focal_loss(logits_fake, _real_targets(labels, ignore_index), weights, gamma)


def labelmix(
    real: Tensor, fake: Tensor, labels: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """OASIS LabelMix: mix a real and a generated image along the label map's class regions.

    For every image independently, each label id present (``ignore_index`` counts as one more region) is
    assigned to real (mask 1) or fake (mask 0) by a fair coin. ``mixed = where(mask, real, fake)``, so the
    mixed image equals ``real`` exactly where ``mask == 1`` and ``fake`` where ``mask == 0``.
    (OASIS draws one coin per class for the whole batch; per-image draws give more mixing patterns.)

    Args:
        real: ``[B, 3, H, W]`` real images.
        fake: ``[B, 3, H, W]`` generated images.
        labels: LongTensor ``[B, H, W]`` label maps.
        generator: optional RNG for reproducibility; coins are drawn on its device and moved to ``labels``.

    Returns:
        ``(mixed [B, 3, H, W], mask [B, 1, H, W])``; ``mask`` has the dtype of ``real`` and values in {0, 1}.
    """
    b = labels.shape[0]
    ids, inverse = torch.unique(labels, return_inverse=True)  # contiguous region ids over the batch
    rng_device = generator.device if generator is not None else torch.device("cpu")
    coins = torch.randint(0, 2, (b, ids.numel()), generator=generator, device=rng_device)
    coins = coins.to(labels.device)
    mask = torch.gather(coins, 1, inverse.flatten(1)).view(b, 1, *labels.shape[1:])
    mixed = torch.where(mask.bool(), real, fake)
    return mixed, mask.to(real.dtype)


def labelmix_loss(logits_mixed: Tensor, logits_real: Tensor, logits_fake: Tensor, mask: Tensor) -> Tensor:
    """OASIS LabelMix consistency loss on the full discriminator logits.

    ``L_LM = mean( (D(mix) - (mask * D(real) + (1 - mask) * D(fake)))^2 )`` over ``B x (C+1) x H x W``,
    i.e. ``F.mse_loss`` on the raw logits (not softmax probabilities), exactly as OASIS. Nothing is
    detached here: as in OASIS, the regularizer trains D through all three outputs.

    Args:
        logits_mixed: ``[B, C+1, H, W]`` D logits on the LabelMix image.
        logits_real: ``[B, C+1, H, W]`` D logits on the real image.
        logits_fake: ``[B, C+1, H, W]`` D logits on the generated image.
        mask: ``[B, 1, H, W]`` LabelMix mask (1 = real), broadcast over channels.

    Returns:
        Scalar loss.
    """
    target = mask * logits_real + (1.0 - mask) * logits_fake
    return F.mse_loss(logits_mixed, target)


def _sample_locations(num_locations: int, num_patches: int, generator: torch.Generator | None) -> Tensor:
    """Indices of ``min(num_patches, num_locations)`` distinct spatial positions (CPU LongTensor)."""
    device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(num_locations, generator=generator, device=device)
    return perm[: min(num_patches, num_locations)].cpu()


def patch_nce_loss(
    feats_fake: list[Tensor],
    feats_real: list[Tensor],
    num_patches: int = 256,
    temperature: float = 0.07,
    generator: torch.Generator | None = None,
) -> Tensor:
    """CUT-style PatchNCE between generated and real backbone features, averaged over feature levels.

    Per level, ``N = min(num_patches, H*W)`` spatial locations are sampled (shared by the batch and by
    fake/real). For each image and sampled location ``i``: query ``q_i`` = fake feature, positive ``k_i`` =
    real feature at ``i``, negatives ``k_j`` = real features at the other sampled locations of the same
    image; features are L2-normalized over channels. Then
    ``L = mean_i -log( exp(q_i.k_i / T) / sum_j exp(q_i.k_j / T) )``, i.e. cross-entropy of the ``N x N``
    similarity matrix against its diagonal. Real features are detached, so only ``feats_fake`` gets a
    gradient.

    Args:
        feats_fake: per-level features ``[B, C_l, H_l, W_l]`` of the generated images.
        feats_real: matching per-level features of the real images.
        num_patches: locations sampled per level.
        temperature: InfoNCE temperature ``T``.
        generator: optional RNG for the sampled locations.

    Returns:
        Scalar loss.
    """
    if len(feats_fake) != len(feats_real) or not feats_fake:
        raise ValueError("feats_fake and feats_real must be non-empty lists of equal length")
    losses = []
    for f_fake, f_real in zip(feats_fake, feats_real, strict=True):
        if f_fake.shape != f_real.shape:
            raise ValueError(f"feature shapes differ: {tuple(f_fake.shape)} vs {tuple(f_real.shape)}")
        b, _, h, w = f_fake.shape
        idx = _sample_locations(h * w, num_patches, generator).to(f_fake.device)
        q = F.normalize(f_fake.flatten(2)[:, :, idx].transpose(1, 2), dim=-1)  # [B, N, C]
        k = F.normalize(f_real.detach().flatten(2)[:, :, idx].transpose(1, 2), dim=-1)  # [B, N, C]
        sim = torch.bmm(q, k.transpose(1, 2)) / temperature  # [B, N, N]; diagonal = positives
        n = sim.shape[1]
        target = torch.arange(n, device=sim.device).expand(b, n)
        losses.append(F.cross_entropy(sim.flatten(0, 1), target.flatten()))
    return torch.stack(losses).mean()


def diversity_loss(images_a: Tensor, images_b: Tensor, noise_a: Tensor, noise_b: Tensor,
                   eps: float = 1e-5, max_ratio: float | None = None) -> Tensor:
    """MSGAN mode-seeking loss for two samples generated from the same label map with different noise.

    Per sample: ``ratio = mean|images_a - images_b| / mean|noise_a - noise_b|`` (means over all non-batch
    dims); ``loss = mean_b 1 / (ratio + eps)``. Minimizing it increases the output distance relative to
    the noise distance. Identical outputs give ``1 / eps`` (finite); identical noises are guarded by
    clamping the noise distance to ``eps``.

    Args:
        images_a, images_b: ``[B, ...]`` generated images.
        noise_a, noise_b: ``[B, ...]`` the noise inputs that produced them.
        eps: numerical guard.
        max_ratio: cap on the ratio (DSGAN's bound): beyond it the term no longer pushes samples apart, so
            diversity is sought up to a level instead of without limit. ``None``: unbounded (MSGAN).

    Returns:
        Scalar loss.
    """
    img_dist = (images_a - images_b).abs().flatten(1).mean(dim=1)
    noise_dist = (noise_a - noise_b).abs().flatten(1).mean(dim=1).clamp_min(eps)
    ratio = img_dist / noise_dist
    if max_ratio is not None:
        ratio = ratio.clamp(max=max_ratio)
    return (1.0 / (ratio + eps)).mean()


def colour_distribution_loss(fake: Tensor, real: Tensor, labels: Tensor, ignore_index: int = 255) -> Tensor:
    """Per-class colour-distribution matching: the 1-D Wasserstein distance, per class and RGB channel, between the
    generated and the real pixel values of the batch.

    ``fake`` and ``real`` are drawn for the same label maps, so every class has exactly as many generated as real
    pixels and sorting both by (class, value) pairs their quantiles position by position. Matching whole
    distributions over the batch, rather than each image to its real counterpart, leaves every sample free to
    differ from the real image of its map (lighting, texture) while the class's colours, spread and tails
    (blown-out white) are pulled to the data's. Every class present counts equally, as in the per-class colour
    distance it targets (:mod:`dpsims_aug.metrics.colour`).

    Args:
        fake: ``[B, 3, H, W]`` generated images in [-1, 1] (gradients flow into them).
        real: ``[B, 3, H, W]`` real images of the same label maps.
        labels: ``[B, H, W]`` contiguous class ids with ``ignore_index``.

    Returns:
        Scalar loss in [-1, 1] units (0 when every class's pixel values match as multisets).
    """
    if fake.shape != real.shape or fake.shape[0] != labels.shape[0] or fake.shape[2:] != labels.shape[1:]:
        raise ValueError(f"fake {tuple(fake.shape)}, real {tuple(real.shape)} and labels {tuple(labels.shape)} differ")
    ids = labels.flatten()
    valid = ids != ignore_index
    if not bool(valid.any()):
        return fake.sum() * 0.0
    ids = ids[valid]
    counts = torch.bincount(ids)
    # Position k of both sorted arrays belongs to the class sorted_ids[k]; each class weighs 1 / (classes present).
    sorted_ids = torch.sort(ids).values
    weights = 1.0 / (counts[sorted_ids].double() * int((counts > 0).sum()))
    offset = ids.double() * 4.0  # class ids dominate the sort key (values are clamped to a span of 3)
    total = fake.new_zeros((), dtype=torch.float64)
    for channel in range(fake.shape[1]):
        f = fake[:, channel].flatten()[valid]
        r = real[:, channel].flatten()[valid]
        f_sorted = f[torch.argsort(offset + f.detach().double().clamp(-1.5, 1.5))]
        r_sorted = r[torch.argsort(offset + r.detach().double().clamp(-1.5, 1.5))]
        total = total + ((f_sorted - r_sorted).abs().double() * weights).sum()
    return (total / fake.shape[1]).to(fake.dtype)
