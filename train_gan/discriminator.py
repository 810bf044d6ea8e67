"""DP-SIMS discriminator: a UNet around a frozen ImageNet-pretrained backbone.

Layout (input images in [-1, 1], ``[B, 3, H, W]``)::

    image ──► FrozenBackbone ──► f_0 (stride r_0) ... f_{n-1} (stride r_{n-1}, deepest)
                                   │                      │
                          conditioning_0   ...   conditioning_{n-1}   (standardize + learned 1x1)
                                   │                      │
                                   │               bottleneck block
                                   │                      │
                                 block_0 ◄── up ◄── ... block_{n-2}   (UNet skips from every stage)
                                   │
    image ──► high-res branch ──► fuse at full resolution ◄── up
                                   │
                                 1x1 conv ──► logits [B, C+1, H, W]

Channel 0 of the output is "fake", channel ``c+1`` is "real pixel of class c" (OASIS). Only the conditioning,
decoder and high-resolution branch are trained; the backbone is a fixed function of the image through which
the generator still receives gradients.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from dpsims_aug.backbones import FrozenBackbone, create_backbone
from dpsims_aug.models.config_dict import DictConfig

__all__ = ['DiscriminatorConfig', 'DPSIMSDiscriminator', 'RunningChannelNorm', 'FeatureConditioning']

FEATURE_CONDITIONINGS = ('channel_norm', 'none')


@dataclass
class DiscriminatorConfig(DictConfig):
    """Hyper-parameters of ``DPSIMSDiscriminator`` (JSON-friendly through ``to_dict``/``from_dict``).

    Attributes:
        num_classes: semantic classes C (the output has C+1 channels).
        backbone: timm model name of the frozen encoder (``dpsims_aug.backbones.PAPER_BACKBONES``).
        weights: backbone weights: ``'offline'``, ``'hub'``, a file path or ``None`` (random init); an
            in-memory state dict is passed to the discriminator as ``backbone_weights`` instead.
        out_indices: backbone stages to use (timm's default: all).
        decoder_channels: decoder width per backbone stage, finest first; an int gives the finest stage's
            width, doubled per stage up to ``max_decoder_channels``.
        max_decoder_channels: cap on the automatic widths.
        feature_conditioning: ``'channel_norm'`` (per-channel standardization with running statistics, then a
            learned 1x1 projection) or ``'none'`` (the 1x1 projection on raw features).
        high_res_channels: width of the trainable full-resolution branch from the image.
        spectral_norm: spectral normalization on every trainable conv.
        backbone_channels_last: run the backbone in channels_last memory format (same results up to float
            rounding; its forward + input-backward is ~1.5x faster on CPU, but a whole embedded_small step was
            not measurably faster; the whole model in channels_last is: ``DPSIMSGAN(channels_last=True)``).
        train_backbone: train the backbone with the rest of D instead of freezing it (an ablation of the paper's
            central claim; with ``weights=None`` it is the same discriminator trained from scratch).
    """

    num_classes: int
    backbone: str = 'tf_efficientnet_lite0'
    weights: str | None = 'offline'
    out_indices: tuple[int, ...] | None = None
    decoder_channels: int | tuple[int, ...] = 64
    max_decoder_channels: int = 256
    feature_conditioning: str = 'channel_norm'
    high_res_channels: int = 32
    spectral_norm: bool = True
    backbone_channels_last: bool = False
    train_backbone: bool = False

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {self.num_classes}')
        if self.feature_conditioning not in FEATURE_CONDITIONINGS:
            raise ValueError(
                f'feature_conditioning must be one of {FEATURE_CONDITIONINGS}, '
                f'got {self.feature_conditioning!r}'
            )
        if isinstance(self.weights, Mapping):
            raise TypeError('pass in-memory state dicts as DPSIMSDiscriminator(..., backbone_weights=...)')
        if isinstance(self.weights, os.PathLike):
            self.weights = os.fspath(self.weights)
        if self.out_indices is not None:
            self.out_indices = tuple(int(i) for i in self.out_indices)
        if not isinstance(self.decoder_channels, int):
            self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        widths = (self.decoder_channels,) if isinstance(self.decoder_channels, int) else self.decoder_channels
        if min(widths + (self.max_decoder_channels, self.high_res_channels)) < 1:
            raise ValueError('channel counts must be positive')

    def stage_widths(self, num_stages: int) -> list[int]:
        """Decoder width of each of ``num_stages`` backbone stages, finest first."""
        if isinstance(self.decoder_channels, int):
            return [min(self.decoder_channels * 2**i, self.max_decoder_channels) for i in range(num_stages)]
        if len(self.decoder_channels) != num_stages:
            raise ValueError(
                f'decoder_channels has {len(self.decoder_channels)} entries but the backbone gives '
                f'{num_stages} stages'
            )
        return list(self.decoder_channels)


def _conv(in_ch: int, out_ch: int, kernel_size: int, sn: bool) -> nn.Module:
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
    return _spectral_norm(conv) if sn else conv


class RunningChannelNorm(nn.Module):
    """Per-channel standardization with running statistics; nothing learned.

    Always normalizes with the running mean/variance (EMA over training batches, the first batch
    initializing them), never with the current batch's statistics: the discriminator sees real and fake
    batches separately, and batch statistics would standardize away exactly the global shifts that tell them
    apart. Statistics are treated as constants for autograd. Under DDP the batch moments are averaged across
    ranks so every replica normalizes identically.
    """

    def __init__(self, num_channels: int, momentum: float = 0.01, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer('running_mean', torch.zeros(num_channels))
        self.register_buffer('running_var', torch.ones(num_channels))
        self.register_buffer('initialized', torch.tensor(False))
        self._known_initialized = False  # host-side cache of `initialized`: avoids a device sync per call

    def _batch_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().float()
        mean = x.mean(dim=(0, 2, 3))
        sq_mean = x.square().mean(dim=(0, 2, 3))
        if dist.is_available() and dist.is_initialized() and self.training:
            moments = torch.stack([mean, sq_mean])
            dist.all_reduce(moments)
            mean, sq_mean = moments / dist.get_world_size()
        return mean, (sq_mean - mean.square()).clamp_min(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a single value per channel (batch 1, 1x1 map) carries no variance: never learn statistics from it
        informative = x.shape[0] * x.shape[2] * x.shape[3] > 1
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)  # may have been set by load_state_dict
        if self.training and informative:
            mean, var = self._batch_moments(x)
            with torch.no_grad():
                if self._known_initialized:
                    self.running_mean.lerp_(mean, self.momentum)
                    self.running_var.lerp_(var, self.momentum)
                else:
                    self.running_mean.copy_(mean)
                    self.running_var.copy_(var)
                    self.initialized.fill_(True)
                    self._known_initialized = True
        if self._known_initialized:
            return self._normalize(x, self.running_mean, self.running_var)
        # no statistics yet (evaluated before any training step): this batch's own, not stored
        mean, var = self._batch_moments(x)
        return self._normalize(x, mean, var if informative else torch.ones_like(var))

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialized = False  # re-read the loaded flag on the next call

    def _normalize(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(var + self.eps).to(x.dtype)
        return (x - mean.to(x.dtype).view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f'{self.running_mean.numel()}, momentum={self.momentum}, eps={self.eps}'


class FeatureConditioning(nn.Module):
    """Conditions one backbone stage for the decoder.

    Pretrained features are badly conditioned (the paper's observation: a few channels dominate): their
    per-channel offsets and scales vary widely and are far from zero-mean / unit-variance (the PyPI
    EfficientNet-Lite0 on a real photo: channel means up to about +-7, channel stds from 0.9 to 9.7 across
    stages), so a learned projection of raw features is dominated by the large channels and starts from a
    badly scaled point. ``'channel_norm'`` standardizes each channel (``RunningChannelNorm``: running
    statistics, no learned affine) and then applies a learned 1x1 projection (spectral-normalized), so every
    channel enters on the same footing; ``'none'`` keeps only the projection (the ablation baseline).
    """

    def __init__(
        self, in_channels: int, out_channels: int, mode: str = 'channel_norm', sn: bool = True
    ) -> None:
        super().__init__()
        if mode not in FEATURE_CONDITIONINGS:
            raise ValueError(f"feature conditioning must be one of {FEATURE_CONDITIONINGS}, got '{mode}'")
        self.mode = mode
        self.norm = RunningChannelNorm(in_channels) if mode == 'channel_norm' else nn.Identity()
        self.proj = _conv(in_channels, out_channels, 1, sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(x))


class _ResBlock(nn.Module):
    """Pre-activation residual block (OASIS discriminator style: LeakyReLU, no normalization layers)."""

    def __init__(self, in_ch: int, out_ch: int, sn: bool) -> None:
        super().__init__()
        self.conv1 = _conv(in_ch, out_ch, 3, sn)
        self.conv2 = _conv(out_ch, out_ch, 3, sn)
        self.shortcut = _conv(in_ch, out_ch, 1, sn) if in_ch != out_ch else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv2(self.act(self.conv1(self.act(x))))


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # sizes, not scale factors: odd input sizes give stage maps that are not exact multiples of each other
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode='bilinear', align_corners=False)


class DPSIMSDiscriminator(nn.Module):
    """UNet discriminator on a frozen pretrained backbone, giving per-pixel (C+1)-class logits.

    Args:
        config: architecture (``DiscriminatorConfig``).
        backbone_weights: overrides ``config.weights`` when given (a state dict or a file path).
    """

    def __init__(
        self,
        config: DiscriminatorConfig,
        backbone_weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        weights = backbone_weights if backbone_weights is not None else config.weights
        self.backbone = FrozenBackbone(
            create_backbone(config.backbone, weights, features_only=True, out_indices=config.out_indices),
            channels_last=config.backbone_channels_last,
        )
        if config.train_backbone:
            self.backbone.unfreeze()
        in_channels = self.backbone.channels
        widths = config.stage_widths(len(in_channels))
        sn = config.spectral_norm

        self.conditioning = nn.ModuleList(
            FeatureConditioning(c, w, config.feature_conditioning, sn) for c, w in zip(in_channels, widths)
        )
        self.bottleneck = _ResBlock(widths[-1], widths[-1], sn)
        # decoder block i merges the upsampled output of level i+1 with the skip of stage i
        self.decoder = nn.ModuleList(
            _ResBlock(widths[i + 1] + widths[i], widths[i], sn) for i in range(len(widths) - 1)
        )

        hr = config.high_res_channels
        self.high_res = nn.Sequential(
            _conv(3, hr, 3, sn), nn.LeakyReLU(0.2),
            _conv(hr, hr, 3, sn), nn.LeakyReLU(0.2),
        )
        self.fuse = _ResBlock(widths[0] + hr, hr, sn)
        self.head = nn.Sequential(nn.LeakyReLU(0.2), _conv(hr, config.num_classes + 1, 1, sn))

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def backbone_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The frozen backbone's multi-scale features of images in [-1, 1] (e.g. for the patch contrastive
        loss), finest first; differentiable with respect to the images."""
        return self.backbone(images)

    def decode(self, images: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits from the images and their ``backbone_features`` (lets callers reuse one backbone pass)."""
        skips = [cond(f) for cond, f in zip(self.conditioning, features)]
        x = self.bottleneck(skips[-1])
        for i in range(len(skips) - 2, -1, -1):
            x = self.decoder[i](torch.cat([_upsample_to(x, skips[i]), skips[i]], dim=1))
        hr = self.high_res(images)
        x = self.fuse(torch.cat([_upsample_to(x, hr), hr], dim=1))
        return self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] in [-1, 1] -> logits [B, C+1, H, W] (0 = fake, c+1 = real class c)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f'expected images of shape [B, 3, H, W], got {tuple(images.shape)}')
        return self.decode(images, self.backbone(images))

    def forward_with_features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(forward(images), backbone_features(images))`` with a single backbone pass."""
        features = self.backbone(images)
        return self.decode(images, features), features

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter except the frozen backbone's: what the discriminator optimizer gets."""
        frozen = {id(p) for p in self.backbone.parameters()} if self.backbone.frozen else set()
        return (p for p in self.parameters() if id(p) not in frozen)
