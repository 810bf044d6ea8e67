"""The DP-SIMS generator: label map (+ noise tokens, + optional instance edges) -> RGB image in one pass.

Architecture:

* **Label encoder.** Contiguous class ids go through an ``nn.Embedding`` with ``C + 1`` rows (row ``C`` is
  the "unlabeled" input, so ignore pixels are seen by the model and never pass as class 0). This equals a
  1x1 conv on a one-hot map without ever materializing the ``C``-channel tensor. A pyramid of conv stages
  follows, halving the resolution down to stride 32; stages at the strides in ``self_attention_strides``
  add global self-attention (context modeling).
* **Noise.** ``T`` standard-normal tokens of ``D`` dims per image (one CPU ``torch.Generator`` per image
  seed, see :func:`sample_noise`), passed through a small shared MLP; every stage whose stride is in
  ``cross_attention_strides`` does ``features += CrossAttention(query=features, key/value=tokens)``.
  With ``class_codes`` the noise has ``C + 1`` more tokens, one per class (and one for unlabeled): each is
  projected and added to the label embedding at the pixels of its class, so every class draws its appearance
  from its own code (SEAN/INADE-style): a few training images give combinatorially many combinations of class
  appearances instead of one global appearance per image.
* **Image decoder.** Starts from the coarsest noise-injected features; one residual block per scale (x2
  nearest upsampling between scales) whose parameter-free-normalized activations are modulated by
  gamma/beta maps predicted once per forward from the encoder features of the same scale. Output conv
  -> tanh.

Speed comes from the design rather than from width: the encoder pyramid is computed once and shared, the
modulation heads are single convs over compact encoder features, and :meth:`DPSIMSGenerator.
prepare_for_inference` folds spectral norm and batch-norm statistics away and switches to channels_last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dpsims_aug.models.blocks import LRELU_SLOPE, DecoderBlock, EncoderStage, conv2d, remove_spectral_norm
from dpsims_aug.models.config_dict import DictConfig

__all__ = [
    "GENERATOR_PRESETS",
    "DPSIMSGenerator",
    "GeneratorConfig",
    "generator_config",
    "sample_noise",
]


@dataclass(frozen=True)
class GeneratorConfig(DictConfig):
    """Hyper-parameters of :class:`DPSIMSGenerator` (JSON-serializable; stored in checkpoints).

    Per-scale tuples are ordered finest first: index ``i`` is the stage at stride ``2 ** i``; their common
    length ``L`` sets the coarsest stride ``2 ** (L - 1)`` (32 for the 6-stage presets).

    Attributes:
        num_classes: number ``C`` of contiguous classes ``0..C-1``.
        ignore_index: label value meaning "unlabeled"; fed as its own embedding row (index ``C``).
        base_channels: width unit; stage widths are ``base_channels * multiplier``.
        encoder_multipliers: label-encoder width per stage.
        decoder_multipliers: decoder block output width per stage.
        num_noise_tokens: ``T`` noise tokens per image.
        noise_dim: ``D`` dims per noise token.
        noise_hidden: width of the shared noise-token MLP (key/value input of every cross-attention).
        self_attention_strides: encoder strides that add self-attention.
        cross_attention_strides: encoder strides that inject noise by cross-attention.
        head_dim: channels per attention head.
        use_instance_edges: expect a ``(B, 1, H, W)`` instance-boundary map as extra input.
        class_codes: one more noise token per class (and for unlabeled), added to the label embedding at that
            class's pixels (per-class appearance codes; see the module docstring).
        spectral_norm: spectral-normalize the conv layers of encoder and decoder blocks (as OASIS's G).
        decoder_norm: parameter-free norm of the decoder, ``'batch'`` (folds away at inference) or
            ``'group'``.
        modulation_kernel_size: kernel of the conv predicting gamma/beta from encoder features.
        image_size: nominal ``(H, W)`` the preset is meant for (informational; any multiple of ``stride``
            works).
    """

    num_classes: int
    ignore_index: int = 255
    base_channels: int = 32
    encoder_multipliers: tuple[int, ...] = (1, 2, 4, 8, 16, 16)
    decoder_multipliers: tuple[int, ...] = (2, 4, 8, 16, 16, 16)
    num_noise_tokens: int = 16
    noise_dim: int = 64
    noise_hidden: int = 256
    self_attention_strides: tuple[int, ...] = (8, 16, 32)
    cross_attention_strides: tuple[int, ...] = (4, 8, 16, 32)
    head_dim: int = 64
    use_instance_edges: bool = False
    class_codes: bool = False
    spectral_norm: bool = True
    decoder_norm: str = "batch"
    modulation_kernel_size: int = 3
    image_size: tuple[int, int] = (256, 256)

    def __post_init__(self) -> None:
        # Lists (e.g. from JSON) become tuples so the config stays hashable and comparable.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if 0 <= self.ignore_index < self.num_classes:
            raise ValueError(
                f"ignore_index={self.ignore_index} collides with class ids 0..{self.num_classes - 1}; "
                "use a value outside that range (e.g. 255)"
            )
        if len(self.encoder_multipliers) != len(self.decoder_multipliers) or len(self.encoder_multipliers) < 2:
            raise ValueError(
                "encoder_multipliers and decoder_multipliers need the same length (>= 2), got "
                f"{len(self.encoder_multipliers)} and {len(self.decoder_multipliers)}"
            )
        strides = {2**i for i in range(len(self.encoder_multipliers))}
        for name in ("self_attention_strides", "cross_attention_strides"):
            unknown = sorted(set(getattr(self, name)) - strides)
            if unknown:
                raise ValueError(f"{name} has strides {unknown} that are not stages; stages: {sorted(strides)}")
        if self.decoder_norm not in ("batch", "group"):
            raise ValueError(f"decoder_norm must be 'batch' or 'group', got {self.decoder_norm!r}")
        if self.modulation_kernel_size % 2 != 1:
            raise ValueError(f"modulation_kernel_size must be odd, got {self.modulation_kernel_size}")

    @property
    def noise_tokens(self) -> int:
        """Noise tokens per image: the ``T`` global ones, then one per class and one for unlabeled with
        ``class_codes``."""
        return self.num_noise_tokens + (self.num_classes + 1 if self.class_codes else 0)

    @property
    def stride(self) -> int:
        """Coarsest stride: input height and width must be multiples of it."""
        return 2 ** (len(self.encoder_multipliers) - 1)

    @property
    def encoder_channels(self) -> tuple[int, ...]:
        """Encoder width per stage, finest first."""
        return tuple(self.base_channels * m for m in self.encoder_multipliers)

    @property
    def decoder_channels(self) -> tuple[int, ...]:
        """Decoder block output width per stage, finest first."""
        return tuple(self.base_channels * m for m in self.decoder_multipliers)


# Paper presets keep OASIS-like capacity (tens of millions of parameters) with wide low-resolution stages
# and narrow high-resolution ones; 'small' trains on CPU at 64..128 px, 'tiny' is for tests.
GENERATOR_PRESETS: dict[str, dict[str, Any]] = {
    "ade20k": dict(num_classes=150, image_size=(256, 256)),
    "coco_stuff": dict(num_classes=182, image_size=(256, 256), use_instance_edges=True),
    "cityscapes": dict(num_classes=35, image_size=(256, 512), use_instance_edges=True),
    "small": dict(
        num_classes=20,
        base_channels=16,
        encoder_multipliers=(1, 2, 4, 4, 8, 8),
        decoder_multipliers=(2, 2, 4, 4, 8, 8),
        noise_hidden=128,
        head_dim=32,
        image_size=(128, 128),
    ),
    "tiny": dict(
        num_classes=8,
        base_channels=4,
        encoder_multipliers=(1, 2, 2, 4, 4, 4),
        decoder_multipliers=(2, 2, 4, 4, 8, 8),
        num_noise_tokens=4,
        noise_dim=16,
        noise_hidden=16,
        head_dim=8,
        self_attention_strides=(16, 32),
        cross_attention_strides=(8, 16, 32),
        image_size=(64, 64),
    ),
}


def generator_config(preset: str, **overrides: Any) -> GeneratorConfig:
    """Config of a named preset (see :data:`GENERATOR_PRESETS`) with keyword overrides applied."""
    if preset not in GENERATOR_PRESETS:
        raise ValueError(f"unknown generator preset {preset!r}; valid presets: {sorted(GENERATOR_PRESETS)}")
    return GeneratorConfig(**{**GENERATOR_PRESETS[preset], **overrides})


def sample_noise(
    seeds: Sequence[int],
    num_tokens: int,
    dim: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Standard-normal noise tokens ``(len(seeds), num_tokens, dim)``, one CPU generator per seed.

    Drawn in float32 on the CPU and only then moved/cast, so an image's noise is bitwise identical on every
    device and whatever batch it is part of.
    """
    if len(seeds) == 0:
        raise ValueError("sample_noise needs at least one seed")
    out = torch.empty(len(seeds), num_tokens, dim)
    for i, seed in enumerate(seeds):
        gen = torch.Generator("cpu").manual_seed(int(seed))
        out[i] = torch.randn(num_tokens, dim, generator=gen)
    return out.to(device=device, dtype=dtype)


class DPSIMSGenerator(nn.Module):
    """DP-SIMS generator: ``forward(labels, noise, edges=None) -> images`` in ``[-1, 1]``.

    Args:
        config: the :class:`GeneratorConfig`.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        enc, dec = config.encoder_channels, config.decoder_channels
        sn = config.spectral_norm
        uses_noise = len(config.cross_attention_strides) > 0

        self.embed = nn.Embedding(config.num_classes + 1, enc[0])
        self.edge_weight = nn.Parameter(torch.randn(enc[0])) if config.use_instance_edges else None
        self.class_code_proj = nn.Linear(config.noise_dim, enc[0]) if config.class_codes else None
        self.noise_mlp = (
            nn.Sequential(
                nn.Linear(config.noise_dim, config.noise_hidden),
                nn.LeakyReLU(LRELU_SLOPE),
                nn.Linear(config.noise_hidden, config.noise_hidden),
            )
            if uses_noise
            else None
        )
        self.encoder = nn.ModuleList(
            EncoderStage(
                enc[max(i - 1, 0)],
                enc[i],
                downsample=i > 0,
                self_attention=2**i in config.self_attention_strides,
                cross_attention=2**i in config.cross_attention_strides,
                noise_channels=config.noise_hidden,
                head_dim=config.head_dim,
                spectral_norm=sn,
            )
            for i in range(len(enc))
        )
        self.stem = conv2d(enc[-1], dec[-1], 3, spectral_norm=sn)
        # Decoder blocks coarsest first; block j works at stride 2 ** (L - 1 - j) and upsamples if j > 0.
        num = len(dec)
        self.decoder = nn.ModuleList(
            DecoderBlock(
                dec[min(i + 1, num - 1)],
                dec[i],
                enc[i],
                upsample=i < num - 1,
                norm=config.decoder_norm,
                modulation_kernel_size=config.modulation_kernel_size,
                spectral_norm=sn,
            )
            for i in reversed(range(num))
        )
        self.to_rgb = conv2d(dec[0], 3, 3)
        self._channels_last = False

    def sample_noise(
        self,
        seeds: Sequence[int],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Noise tokens for ``seeds`` with this model's ``(noise_tokens, noise_dim)`` (see :func:`sample_noise`);
        device defaults to the model's, dtype to float32."""
        if device is None:
            device = self.embed.weight.device
        return sample_noise(seeds, self.config.noise_tokens, self.config.noise_dim, device, dtype)

    def _label_ids(self, labels: torch.Tensor) -> torch.Tensor:
        """Validate a label batch and map ``ignore_index`` to the extra embedding row ``C``."""
        cfg = self.config
        if labels.dim() != 3:
            raise ValueError(f"labels must be (B, H, W), got shape {tuple(labels.shape)}")
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
        h, w = labels.shape[-2:]
        if h % cfg.stride or w % cfg.stride:
            raise ValueError(
                f"label map size {h}x{w} (HxW) is not supported: height and width must be multiples of {cfg.stride}"
            )
        labels = labels.long()
        ignore = labels == cfg.ignore_index
        if bool(labels.min() < 0) or bool(labels.max() >= cfg.num_classes):  # slow path only if needed
            invalid = ((labels < 0) | (labels >= cfg.num_classes)) & ~ignore
            if bool(invalid.any()):
                bad = torch.unique(labels[invalid]).tolist()
                raise ValueError(
                    f"label ids {bad[:20]}{' ...' if len(bad) > 20 else ''} are outside "
                    f"0..{cfg.num_classes - 1} and are not ignore_index={cfg.ignore_index}"
                )
        return labels.masked_fill(ignore, cfg.num_classes)

    def encode(
        self, labels: torch.Tensor, noise: torch.Tensor, edges: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Noise-injected label features per stage, finest first (what the decoder is modulated by)."""
        cfg = self.config
        ids = self._label_ids(labels)
        b = ids.shape[0]
        if noise.dim() != 3 or noise.shape != (b, cfg.noise_tokens, cfg.noise_dim):
            raise ValueError(
                f"noise must be (B, T, D) = ({b}, {cfg.noise_tokens}, {cfg.noise_dim}), got {tuple(noise.shape)}"
            )
        x = self.embed(ids)
        if self.class_code_proj is not None:
            codes = self.class_code_proj(noise[:, cfg.num_noise_tokens:].to(x.dtype))  # (B, C + 1, E)
            rows = ids + torch.arange(b, device=ids.device).view(b, 1, 1) * (cfg.num_classes + 1)
            x = x + codes.reshape(-1, codes.shape[-1])[rows]  # each pixel gets its class's code
            noise = noise[:, : cfg.num_noise_tokens]
        # (B, H, W, C) -> (B, C, H, W): the permuted view already has channels_last strides.
        x = x.permute(0, 3, 1, 2)
        if self.edge_weight is not None:
            if edges is None or edges.shape != (b, 1, *ids.shape[1:]):
                got = None if edges is None else tuple(edges.shape)
                raise ValueError(f"this generator uses instance edges: pass edges of shape (B, 1, H, W), got {got}")
            x = x + edges.to(x.dtype) * self.edge_weight.view(1, -1, 1, 1)
        elif edges is not None:
            raise ValueError("edges given, but this generator was configured with use_instance_edges=False")
        if not self._channels_last:
            x = x.contiguous()
        tokens = self.noise_mlp(noise.to(x.dtype)) if self.noise_mlp is not None else noise
        feats = []
        for stage in self.encoder:
            x = stage(x, tokens)
            feats.append(x)
        return feats

    def forward(self, labels: torch.Tensor, noise: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        """Synthesize images.

        Args:
            labels: ``(B, H, W)`` integer class ids in ``0..C-1`` or ``ignore_index``; ``H`` and ``W``
                multiples of ``config.stride``.
            noise: ``(B, T, D)`` noise tokens, normally from :meth:`sample_noise`.
            edges: ``(B, 1, H, W)`` instance-boundary map (1 on boundaries), iff ``use_instance_edges``.

        Returns:
            ``(B, 3, H, W)`` RGB images in ``[-1, 1]``.
        """
        feats = self.encode(labels, noise, edges)
        x = self.stem(feats[-1])
        for block, f in zip(self.decoder, reversed(feats)):
            x = block(x, f)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, LRELU_SLOPE)))

    @torch.no_grad()
    def recalibrate_batch_norm(self, label_batches: Iterable[torch.Tensor], seed: int = 0) -> int:
        """Re-estimate every BatchNorm's running statistics for *these* weights (in place; returns the batches used).

        An EMA generator that copies the live generator's running statistics normalizes with the statistics of
        other weights; OASIS therefore re-collects them before evaluating its EMA. This does it exactly: the
        statistics are reset, then set to the plain average over forwards (train mode, no gradients) on
        ``label_batches`` with noise from ``seed``, and the module returns to its previous mode. Spectral-norm
        power iterations also advance on these weights during the forwards.

        ``label_batches`` holds ``(B, H, W)`` label tensors, or ``(labels, edges)`` pairs for a generator with
        instance edges (``edges``: ``(B, 1, H, W)``, see :meth:`forward`).

        Raises:
            ValueError: if ``label_batches`` is empty.
        """
        norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        if not norms:
            return 0
        was_training, momenta = self.training, [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average = the mean over the batches
        self.train()
        used = 0
        try:
            for batch in label_batches:
                labels, edges = batch if isinstance(batch, tuple | list) else (batch, None)
                seeds = [int(seed) * 1_000_003 + used * 4096 + i for i in range(labels.shape[0])]
                self(labels, self.sample_noise(seeds, device=labels.device), edges)
                used += 1
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.train(was_training)
        if used == 0:
            raise ValueError("recalibrate_batch_norm needs at least one batch of label maps")
        return used

    @torch.no_grad()
    def prepare_for_inference(self, channels_last: bool = True, dtype: torch.dtype | None = None) -> DPSIMSGenerator:
        """Turn this model into a faster, inference-only equivalent (in place; returns ``self``).

        Switches to eval mode, replaces spectral-norm parametrizations by their normalized weights, folds
        batch-norm statistics into the modulation heads (in float32, before any cast), optionally converts to
        channels_last and casts the weights to ``dtype`` (e.g. ``torch.bfloat16``: saves autocast's per-call
        weight casts). In float32 the output matches the un-fused eval model up to float rounding. Not meant
        for further training.
        """
        self.eval()
        remove_spectral_norm(self)
        for block in self.decoder:
            block.fold_norms()
        if dtype is not None:
            self.to(dtype=dtype)
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self._channels_last = channels_last
        return self
