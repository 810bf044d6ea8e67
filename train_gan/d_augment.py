"""Differentiable augmentation of the discriminator's inputs (DiffAugment / ADA) for low-data GAN training.

With few training images a discriminator memorizes them and its gradients stop being useful to the generator.
DiffAugment (Zhao et al. 2020) and ADA (Karras et al. 2020) augment *every* image D sees, real and generated alike,
with differentiable operations, so D cannot tell real from fake by the augmentation and G still gets gradients
through it. The pixel-wise (C+1)-class discriminator is trained against label maps, so here the geometric
operations move the label map with the image, and pixels that an operation invents (translation padding, cutout)
get the ignore label and a zero weight in every loss term.

Operations (DiffAugment's three policies, on images in ``[-1, 1]``):

* ``colour``: brightness ``+ U(-0.5, 0.5)``, saturation ``x U(0, 2)``, contrast ``x U(0.5, 1.5)``;
* ``translation``: integer shift by up to ``1/8`` of the size, zero (grey) padding;
* ``cutout``: one square of half the size set to 0.

Each operation is applied to each sample with probability ``p`` (ADA style; ``p = 1`` is DiffAugment). The
parameters are drawn once per sample from a ``torch.Generator`` and applied identically to every tensor of that
sample (real, generated, LabelMix image and mask, label map), which keeps LabelMix's consistency target and the
PatchNCE correspondence valid. :class:`AdaptiveProbability` adjusts ``p`` from D's overfitting signal as ADA does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["OPERATIONS", "AdaptiveProbability", "AugmentParams", "apply_colour", "apply_geometry",
           "augment_batch", "overfitting_signal", "sample_params"]

OPERATIONS = ("colour", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


@dataclass
class AugmentParams:
    """Per-sample parameters of one augmentation draw (``B`` samples; an operation off for a sample is identity).

    Attributes:
        brightness, saturation, contrast: ``[B]`` colour factors (identity values where colour is off).
        shift_y, shift_x: ``[B]`` integer translations in pixels.
        cutout: ``[B, 4]`` boxes ``(y0, y1, x0, x1)`` (empty boxes where cutout is off).
    """

    brightness: Tensor
    saturation: Tensor
    contrast: Tensor
    shift_y: Tensor
    shift_x: Tensor
    cutout: Tensor

    @property
    def geometric(self) -> bool:
        """Whether any sample is translated or cut out (else label maps are untouched)."""
        return bool((self.shift_y != 0).any() or (self.shift_x != 0).any() or
                    (self.cutout[:, 1] > self.cutout[:, 0]).any())

    def repeat(self, times: int) -> AugmentParams:
        """The same parameters for ``times`` consecutive copies of the batch (e.g. two seeds per label map)."""
        return AugmentParams(*(t.repeat(times, *([1] * (t.dim() - 1))) for t in vars(self).values()))

    def take(self, count: int) -> AugmentParams:
        """The parameters of the first ``count`` samples."""
        return AugmentParams(*(t[:count] for t in vars(self).values()))


def sample_params(batch: int, height: int, width: int, p: float, ops: tuple[str, ...] = OPERATIONS,
                  generator: torch.Generator | None = None) -> AugmentParams:
    """Draw the parameters of ``batch`` samples: each operation in ``ops`` is on with probability ``p``."""
    unknown = set(ops) - set(OPERATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation operations {sorted(unknown)}; known: {list(OPERATIONS)}")

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(batch, generator=generator)

    def on(op: str) -> Tensor:
        draw = torch.rand(batch, generator=generator) < p  # drawn even when off: the stream does not depend on ops
        return draw & (op in ops)

    colour = on("colour")
    brightness = torch.where(colour, uniform(-0.5, 0.5), torch.zeros(batch))
    saturation = torch.where(colour, uniform(0.0, 2.0), torch.ones(batch))
    contrast = torch.where(colour, uniform(0.5, 1.5), torch.ones(batch))
    translate = on("translation")
    max_y, max_x = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
    shift_y = torch.randint(-max_y, max_y + 1, (batch,), generator=generator) * translate
    shift_x = torch.randint(-max_x, max_x + 1, (batch,), generator=generator) * translate
    cut = on("cutout")
    size_y, size_x = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
    cy = torch.randint(0, height + (1 - size_y % 2), (batch,), generator=generator)
    cx = torch.randint(0, width + (1 - size_x % 2), (batch,), generator=generator)
    y0, x0 = (cy - size_y // 2).clamp(0, height), (cx - size_x // 2).clamp(0, width)
    y1, x1 = (cy - size_y // 2 + size_y).clamp(0, height), (cx - size_x // 2 + size_x).clamp(0, width)
    boxes = torch.stack([y0, y1, x0, x1], dim=1) * cut.unsqueeze(1)
    return AugmentParams(brightness, saturation, contrast, shift_y, shift_x, boxes)


def apply_colour(images: Tensor, params: AugmentParams) -> Tensor:
    """Brightness, saturation and contrast of ``[B, 3, H, W]`` images in ``[-1, 1]`` (differentiable)."""
    view = (-1, 1, 1, 1)
    b = params.brightness.to(images).view(view)
    s = params.saturation.to(images).view(view)
    c = params.contrast.to(images).view(view)
    x = images + b
    mean_channel = x.mean(dim=1, keepdim=True)
    x = (x - mean_channel) * s + mean_channel
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean_all) * c + mean_all
    on = (b != 0) | (s != 1) | (c != 1)  # samples with colour off stay bit-exact (no round-off from x + 0 ...)
    return torch.where(on, x, images)


def _valid_mask(params: AugmentParams, height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Source indices ``[B, H*W]`` of the translation and the mask ``[B, H, W]`` of pixels that stay real."""
    dy, dx = params.shift_y.to(device), params.shift_x.to(device)
    ys = torch.arange(height, device=device).view(1, height, 1) - dy.view(-1, 1, 1)
    xs = torch.arange(width, device=device).view(1, 1, width) - dx.view(-1, 1, 1)
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    index = (ys.clamp(0, height - 1) * width + xs.clamp(0, width - 1)).expand(-1, height, width)
    box = params.cutout.to(device)
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    in_box = ((rows >= box[:, 0].view(-1, 1, 1)) & (rows < box[:, 1].view(-1, 1, 1))
              & (cols >= box[:, 2].view(-1, 1, 1)) & (cols < box[:, 3].view(-1, 1, 1)))
    return index.flatten(1), inside & ~in_box


def apply_geometry(tensor: Tensor, params: AugmentParams, fill: float | int = 0) -> Tensor:
    """Translate then cut out ``[B, H, W]`` or ``[B, C, H, W]`` tensors; invented pixels become ``fill``."""
    squeeze = tensor.dim() == 3
    x = tensor.unsqueeze(1) if squeeze else tensor
    b, c, h, w = x.shape
    index, valid = _valid_mask(params, h, w, x.device)
    moved = x.flatten(2).gather(2, index.unsqueeze(1).expand(b, c, h * w)).view(b, c, h, w)
    out = torch.where(valid.unsqueeze(1), moved, torch.full_like(moved, fill))
    return out.squeeze(1) if squeeze else out


def augment_batch(images: Tensor, labels: Tensor, params: AugmentParams,
                  ignore_index: int = 255) -> tuple[Tensor, Tensor, Tensor]:
    """Augment images with their label maps.

    Returns:
        ``(images, labels, valid)``: the augmented images, their label maps (ignore where pixels were invented) and
        the float mask ``[B, H, W]`` of pixels that come from the input (0 where invented), for loss weights.
    """
    out = apply_colour(images, params)
    if not params.geometric:
        return out, labels, torch.ones(labels.shape, dtype=images.dtype, device=images.device)
    out = apply_geometry(out, params, 0.0)
    valid = _valid_mask(params, *labels.shape[1:], labels.device)[1]
    return out, apply_geometry(labels, params, ignore_index), valid.to(images.dtype)


def overfitting_signal(logits_real: Tensor, labels: Tensor, ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """ADA's ``r_t`` for the pixel-wise discriminator: the sum and count of ``sign(logit[class] - logit[fake])``
    over labeled pixels of real images (``r_t = sum / count``; 0 = undecided, 1 = D sure every real pixel is
    real, i.e. overfitting)."""
    valid = labels != ignore_index
    target = torch.where(valid, labels + 1, torch.zeros_like(labels)).unsqueeze(1)
    margin = logits_real.gather(1, target).squeeze(1) - logits_real[:, 0]
    signs = torch.sign(margin.detach().float()) * valid
    return signs.sum(), valid.sum().float()


class AdaptiveProbability:
    """ADA's controller: every ``interval`` steps, ``p += sign(r_t - target) * images / speed_images``.

    ``speed_images`` is how many images it takes to move ``p`` from 0 to 1 (ADA: 500k at GPU scale; CPU-scale runs
    see a few tens of thousands of images in total, hence a smaller default in the model). The state lives in the
    model's buffers, so it is checkpointed and restored exactly.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed_images: float = 20_000.0) -> None:
        self.target, self.interval, self.speed_images = target, interval, speed_images

    def due(self, step: int) -> bool:
        """Whether step ``step`` (0-based) ends an interval."""
        return (step + 1) % self.interval == 0

    def update(self, p: Tensor, r_t: float, batch: int) -> None:
        """Move ``p`` (in place, clamped to [0, 1]) after an interval whose mean signal was ``r_t``."""
        delta = (1.0 if r_t > self.target else -1.0) * batch * self.interval / self.speed_images
        p.fill_(min(1.0, max(0.0, float(p) + delta)))
