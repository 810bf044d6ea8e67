"""Building blocks of the DP-SIMS generator.

The generator has two halves (see ``generator.py``):

* a label encoder (:class:`EncoderStage`): a pyramid of conv blocks over embedded label ids, with
  self-attention (:class:`SpatialSelfAttention`) at low resolution and noise injection by cross-attention
  (:class:`NoiseCrossAttention`) at low and mid resolution;
* an image decoder (:class:`DecoderBlock`): residual blocks whose parameter-free-normalized activations are
  modulated SPADE-style by gamma/beta maps predicted from the encoder features of the same scale
  (:class:`ModulationHead`).

All blocks work on NCHW tensors in either memory format; channels_last is what the fused inference model uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

__all__ = [
    "DecoderBlock",
    "EncoderStage",
    "ModulationHead",
    "NoiseCrossAttention",
    "ResidualConvBlock",
    "SpatialSelfAttention",
    "conv2d",
    "remove_spectral_norm",
]

LRELU_SLOPE = 0.2


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    bias: bool = True,
    spectral_norm: bool = False,
) -> nn.Module:
    """A ``same``-padded conv, optionally spectrally normalized (torch parametrization, removable)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)
    return _spectral_norm(conv) if spectral_norm else conv


def remove_spectral_norm(module: nn.Module) -> int:
    """Replace every spectral-norm parametrization under ``module`` by its current normalized weight.

    Call in eval mode: in train mode reading the parametrized weight runs a power iteration and changes it.
    Returns the number of parametrizations removed.

    torch's ``remove_parametrizations`` deletes the property from the module's injected class, and a deep copy
    shares that class with its original, so removing it from a copy would break the original. Here each module
    just gets its plain class back and a plain ``weight`` parameter; the shared class is left alone.
    """
    removed = 0
    for sub in module.modules():
        if parametrize.is_parametrized(sub, "weight"):
            original = sub.parametrizations["weight"].original
            with torch.no_grad():
                weight = sub.weight.detach().clone()
            sub.__class__ = sub.__class__.__bases__[0]  # the class parametrize subclassed
            del sub._modules["parametrizations"]
            sub.weight = nn.Parameter(weight, requires_grad=original.requires_grad)
            removed += 1
    return removed


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C); a free view when ``x`` is channels_last."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c)


def _from_tokens(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W) with channels_last strides (no copy)."""
    b, _, c = t.shape
    return t.reshape(b, h, w, c).permute(0, 3, 1, 2)


class SpatialSelfAttention(nn.Module):
    """Pre-norm multi-head self-attention over all positions of a feature map (context modeling).

    Used at low resolution only (a 32x32 map is 1024 tokens), where global context is cheap.
    """

    def __init__(self, channels: int, head_dim: int = 64) -> None:
        super().__init__()
        self.num_heads = max(1, channels // head_dim)
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = _to_tokens(x)
        qkv = self.qkv(self.norm(t)).reshape(b, h * w, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.proj(y.transpose(1, 2).reshape(b, h * w, c))
        return x + _from_tokens(y, h, w)


class NoiseCrossAttention(nn.Module):
    """Noise injection: ``features += CrossAttention(query=features, key/value=noise tokens)``.

    Each position picks a mixture of the image's noise tokens, so a new seed changes appearance everywhere
    while the label layout (in the query) decides where each token is expressed.
    """

    def __init__(self, channels: int, noise_channels: int, head_dim: int = 64) -> None:
        super().__init__()
        self.num_heads = max(1, channels // head_dim)
        self.norm = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(noise_channels, 2 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        nh, hd = self.num_heads, c // self.num_heads
        q = self.q(self.norm(_to_tokens(x))).reshape(b, h * w, nh, hd).transpose(1, 2)
        k, v = self.kv(noise).reshape(b, noise.shape[1], 2, nh, hd).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.proj(y.transpose(1, 2).reshape(b, h * w, c))
        return x + _from_tokens(y, h, w)


class ResidualConvBlock(nn.Module):
    """``x + conv(lrelu(conv(lrelu(x))))``: the encoder's norm-free conv block (label features are
    well conditioned by construction, and a norm here could not be folded away at inference)."""

    def __init__(self, channels: int, spectral_norm: bool = False) -> None:
        super().__init__()
        self.conv1 = conv2d(channels, channels, 3, spectral_norm=spectral_norm)
        self.conv2 = conv2d(channels, channels, 3, spectral_norm=spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.leaky_relu(x, LRELU_SLOPE))
        return x + self.conv2(F.leaky_relu(y, LRELU_SLOPE))


class EncoderStage(nn.Module):
    """One scale of the label encoder: [strided conv down] -> residual conv block -> [self-attention]
    -> [noise cross-attention]."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        downsample: bool,
        self_attention: bool,
        cross_attention: bool,
        noise_channels: int,
        head_dim: int = 64,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if downsample:
            self.down = conv2d(in_channels, out_channels, 3, stride=2, spectral_norm=spectral_norm)
        elif in_channels != out_channels:
            self.down = conv2d(in_channels, out_channels, 1, spectral_norm=spectral_norm)
        else:
            self.down = nn.Identity()
        self.block = ResidualConvBlock(out_channels, spectral_norm=spectral_norm)
        self.attn = SpatialSelfAttention(out_channels, head_dim) if self_attention else None
        self.cross = NoiseCrossAttention(out_channels, noise_channels, head_dim) if cross_attention else None

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = self.block(self.down(x))
        if self.attn is not None:
            x = self.attn(x)
        if self.cross is not None:
            x = self.cross(x, noise)
        return x


class ModulationHead(nn.Module):
    """Predicts all gamma/beta maps of one decoder block from the encoder features of its scale.

    One conv per scale, run once per forward (SPADE/OASIS instead run a 2-layer conv MLP on the resized
    one-hot map in every normalization layer). Output channel layout: ``[g_0, b_0, g_1, b_1, ...]`` for
    the given normalized widths.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], kernel_size: int = 3) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.conv = conv2d(in_channels, 2 * sum(self.widths), kernel_size)

    def forward(self, feats: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = self.conv(feats)
        chunks = torch.split(out, [w for w in self.widths for _ in range(2)], dim=1)
        return [(chunks[2 * i], chunks[2 * i + 1]) for i in range(len(self.widths))]

    @torch.no_grad()
    def fold_affine(self, index: int, scale: torch.Tensor, shift: torch.Tensor) -> None:
        """Rewrite pair ``index`` so that, for ``y = x * scale + shift`` (per channel),
        ``y * (1 + gamma) + beta == x * gamma' + beta'`` with (gamma', beta') the new outputs.

        Exact because a conv is linear in its weights and bias (zero padding included).
        """
        start = 2 * sum(self.widths[:index])
        w = self.widths[index]
        g, b = slice(start, start + w), slice(start + w, start + 2 * w)
        weight, bias = self.conv.weight, self.conv.bias
        wg, wb = weight[g].clone(), weight[b].clone()
        bg, bb = bias[g].clone(), bias[b].clone()
        s4, t4 = scale.view(-1, 1, 1, 1), shift.view(-1, 1, 1, 1)
        weight[g] = wg * s4
        bias[g] = (1 + bg) * scale
        weight[b] = wg * t4 + wb
        bias[b] = (1 + bg) * shift + bb


def _param_free_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "group":
        return nn.GroupNorm(min(32, channels), channels, affine=False)
    raise ValueError(f"unknown decoder norm {kind!r}; expected 'batch' or 'group'")


class DecoderBlock(nn.Module):
    """SPADE-style residual block, optionally upsampling x2 (nearest) first.

    ``h0 = mod_0(norm_0(x))``; ``out = conv_s(h0) + conv_1(lrelu(mod_1(norm_1(conv_0(lrelu(h0))))))``
    where ``mod_i(y) = y * (1 + gamma_i) + beta_i`` with (gamma_i, beta_i) from :class:`ModulationHead`
    applied to the encoder features of this scale. The shortcut reuses ``h0`` (SPADE gives it its own
    norm and modulation; sharing saves one modulation per block). With ``'batch'`` norm in eval mode the
    normalization folds into the modulation head (:meth:`fold_norms`): each modulation becomes one addcmul.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        feat_channels: int,
        upsample: bool,
        norm: str = "batch",
        modulation_kernel_size: int = 3,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        mid = min(in_channels, out_channels)
        self.upsample = upsample
        self.norm0 = _param_free_norm(norm, in_channels)
        self.norm1 = _param_free_norm(norm, mid)
        self.modulation = ModulationHead(feat_channels, (in_channels, mid), modulation_kernel_size)
        self.conv0 = conv2d(in_channels, mid, 3, spectral_norm=spectral_norm)
        self.conv1 = conv2d(mid, out_channels, 3, spectral_norm=spectral_norm)
        self.shortcut = (
            conv2d(in_channels, out_channels, 1, bias=False, spectral_norm=spectral_norm)
            if in_channels != out_channels
            else None
        )
        self.folded = False

    def forward(self, x: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        (g0, b0), (g1, b1) = self.modulation(feats)
        if self.folded:
            h0 = torch.addcmul(b0, x, g0)
        else:
            h0 = self.norm0(x) * (1 + g0) + b0
        y = self.conv0(F.leaky_relu(h0, LRELU_SLOPE))
        y = torch.addcmul(b1, y, g1) if self.folded else self.norm1(y) * (1 + g1) + b1
        y = self.conv1(F.leaky_relu(y, LRELU_SLOPE))
        skip = self.shortcut(h0) if self.shortcut is not None else x
        return skip + y

    @torch.no_grad()
    def fold_norms(self) -> bool:
        """Fold eval-mode BatchNorm statistics into the modulation head; returns whether it folded.

        Group norm depends on the input's own statistics and cannot be folded. Eval mode only.
        """
        if self.training:
            raise RuntimeError("fold_norms() needs eval mode: train-mode batch norm uses batch statistics")
        if self.folded or not all(
            isinstance(n, nn.BatchNorm2d) and n.track_running_stats for n in (self.norm0, self.norm1)
        ):
            return False
        for i, norm in enumerate((self.norm0, self.norm1)):
            scale = torch.rsqrt(norm.running_var + norm.eps)
            self.modulation.fold_affine(i, scale, -norm.running_mean * scale)
        self.norm0, self.norm1 = nn.Identity(), nn.Identity()
        self.folded = True
        return True
