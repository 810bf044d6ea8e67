"""A re-implementation of the OASIS generator architecture, as a speed reference for bench_generator.py.

Written from the OASIS paper's description (Schonfeld et al., "You Only Need Adversarial Supervision for
Semantic Image Synthesis", ICLR 2021), which builds on SPADE (Park et al., CVPR 2019):

* input: the one-hot label map (``C`` classes + 1 "unlabeled" channel [+ 1 instance-edge channel])
  concatenated with "3D noise": a 64-d standard-normal vector per image replicated at every pixel;
* a 3x3 conv maps that input, resized to 1/32, to 1024 channels;
* 6 SPADE residual blocks with widths 1024, 1024, 1024, 512, 256, 128, 64 (x2 nearest upsampling between
  blocks), spectral norm on the block convs;
* every SPADE layer normalizes its input with a parameter-free batch norm and modulates it by gamma/beta
  predicted from the (resized) full label+noise input by a 3x3 conv to 128 channels + ReLU followed by two
  3x3 convs: this per-layer recomputation is where most of its ~389 GFLOPs per 256x256 image go;
* leaky ReLU (0.2), output 3x3 conv to RGB and tanh.

Used only to measure OASIS and DP-SIMS in the same run (same machine load); it is never trained here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from dpsims_aug.models.blocks import remove_spectral_norm

__all__ = ["OASISGenerator", "SPADE", "SPADEResBlock"]


class SPADE(nn.Module):
    """Parameter-free batch norm modulated by gamma/beta predicted from the resized conditioning map."""

    def __init__(self, channels: int, cond_channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cond = F.interpolate(cond, size=x.shape[-2:], mode="nearest")
        a = self.shared(cond)
        return self.norm(x) * (1 + self.gamma(a)) + self.beta(a)


class SPADEResBlock(nn.Module):
    """SPADE residual block; the shortcut gets its own SPADE + 1x1 conv when the width changes."""

    def __init__(self, fin: int, fout: int, cond_channels: int) -> None:
        super().__init__()
        fmid = min(fin, fout)
        self.norm_0 = SPADE(fin, cond_channels)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmid, 3, padding=1))
        self.norm_1 = SPADE(fmid, cond_channels)
        self.conv_1 = spectral_norm(nn.Conv2d(fmid, fout, 3, padding=1))
        self.learned_shortcut = fin != fout
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, cond_channels)
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, cond), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, cond), 0.2))
        return skip + dx


class OASISGenerator(nn.Module):
    """OASIS generator for ``num_classes`` classes (+1 unlabeled channel) at any multiple-of-32 size.

    Args:
        num_classes: contiguous classes ``0..C-1``; ``ignore_index`` pixels go to channel ``C``.
        z_dim: 3D-noise channels.
        base_channels: width unit (64 in OASIS).
        use_instance_edges: one more input channel for instance boundaries.
        ignore_index: label value meaning "unlabeled".
    """

    def __init__(
        self,
        num_classes: int,
        z_dim: int = 64,
        base_channels: int = 64,
        use_instance_edges: bool = False,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        self.num_classes, self.z_dim, self.ignore_index = num_classes, z_dim, ignore_index
        widths = [base_channels * m for m in (16, 16, 16, 8, 4, 2, 1)]
        cond = num_classes + 1 + int(use_instance_edges) + z_dim
        self.fc = nn.Conv2d(cond, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList(SPADEResBlock(widths[i], widths[i + 1], cond) for i in range(6))
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)
        self._channels_last = False

    def forward(self, labels: torch.Tensor, z: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        """``labels`` (B, H, W) ids, ``z`` (B, z_dim) noise, optional ``edges`` (B, 1, H, W) -> (B, 3, H, W)."""
        b, h, w = labels.shape
        ids = labels.long().masked_fill(labels == self.ignore_index, self.num_classes)
        dtype = self.fc.weight.dtype
        fmt = torch.channels_last if self._channels_last else torch.contiguous_format
        onehot = torch.zeros(b, self.num_classes + 1, h, w, dtype=dtype, device=labels.device)
        onehot.scatter_(1, ids[:, None], 1.0)
        parts = [onehot] + ([edges.to(dtype)] if edges is not None else [])
        parts.append(z.to(dtype)[:, :, None, None].expand(b, self.z_dim, h, w))
        cond = torch.cat(parts, dim=1).contiguous(memory_format=fmt)
        x = self.fc(F.interpolate(cond, size=(h // 32, w // 32), mode="nearest"))
        for i, block in enumerate(self.blocks):
            x = block(x, cond)
            if i < len(self.blocks) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))

    @torch.no_grad()
    def prepare_for_inference(self, channels_last: bool = True, dtype: torch.dtype | None = None) -> OASISGenerator:
        """Same treatment as DPSIMSGenerator's (minus its norm folding): eval, spectral norm removed, optional
        weight cast, channels_last."""
        self.eval()
        remove_spectral_norm(self)
        if dtype is not None:
            self.to(dtype=dtype)
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self._channels_last = channels_last
        return self
