"""Checkpoint -> batched, seeded images on any device and dtype.

Determinism contract: an image is a function of (label map, seed, device, dtype, ``batch_size``,
``max_batch_pixels``), never of which
other images share its call or its batch, and seeds come from :func:`derive_seed`, a hash of (global seed, label-map
key, k). So offline generation gives the same bytes whatever the worker count, shard or resume point.

Why ``batch_size`` is part of the contract: CPU (oneDNN) and CUDA (cuDNN) pick convolution algorithms by input
shape, and e.g. a batch of one takes another path than a batch of eight (last-bit float differences that survive
rounding to uint8 on a few pixels). :class:`Synthesizer` therefore always runs the model at exactly ``batch_size``
images, padding a short final batch with copies, so the forward shape never depends on how many images were asked
for. Use ``batch_size=1`` when images are made one at a time.

Memory: a forward holds at most ``max_batch_pixels`` label-map pixels (default: 8 images of 512x512), so big maps
run fewer images per forward (:meth:`Synthesizer.batch_size_for`; a 2048x1024 Cityscapes map runs alone, where 8 of
them would need tens of GiB). Small maps keep ``batch_size``. The per-size batch is fixed, so the contract holds.

Sizes: the generator needs height and width that are multiples of its stride (32). Other sizes are padded at the
bottom and right with the ignore label (the model's "unlabeled" input, never a class) to the next multiple, and the
image is cropped back, so the output always has the label map's size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from dpsims_aug.checkpoint import CheckpointError, file_sha256, load_generator_checkpoint
from dpsims_aug.instance_edges import instance_edges
from dpsims_aug.labels import LabelMapError, LabelSpace

DEFAULT_CHECKPOINT_NAME = "embedded_small.safetensors"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def derive_seed(global_seed: int, key: str, k: int) -> int:
    """The seed of sample ``k`` of the label map identified by ``key`` (a 63-bit int from SHA-256).

    Depends only on its arguments, so it is the same for any batch size, worker count, shard or resume.
    """
    digest = hashlib.sha256(f"dpsims-aug\0{int(global_seed)}\0{key}\0{int(k)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def default_checkpoint_path() -> Path:
    """Where the bundled generator trained on the embedded dataset lives (it may not be installed yet)."""
    return Path(str(resources.files("dpsims_aug").joinpath("assets", DEFAULT_CHECKPOINT_NAME)))


def resolve_device(device: str | torch.device) -> str:
    """The device to run on: under torchrun, plain ``cuda`` becomes ``cuda:<LOCAL_RANK>`` (one GPU per process)."""
    device = str(device)
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def parse_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``'fp32'|'bf16'|'fp16'`` (or a torch dtype) -> torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"unsupported dtype {dtype}; use one of {sorted(DTYPES)}")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def label_edges(labels: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` float map, 1 where a pixel's label differs from a 4-neighbour's: the class boundaries of a
    label batch, by the same rule as instance boundaries (:func:`dpsims_aug.instance_edges.instance_edges`)."""
    return instance_edges(labels).unsqueeze(1)


# 8 images of 512x512: the default batch of 8 at the paper presets' sizes (256x512 .. 512x512), one image per
# forward at Cityscapes' full 2048x1024 (about 8.6 GiB peak on the CPU at fp32, 1 image).
DEFAULT_MAX_BATCH_PIXELS = 8 * 512 * 512


class Synthesizer:
    """Turn contiguous label maps + seeds into uint8 RGB images with a DP-SIMS generator.

    Args:
        generator: A ``DPSIMSGenerator``; it is put in eval mode (its batch norm must use running statistics).
        label_space: The label space the generator was trained on (its class count must match).
        device: Where to run (``'cpu'``, ``'cuda'``, ``'cuda:1'``, ...); default: where the generator is.
        dtype: ``torch.float32``, ``torch.bfloat16`` or ``torch.float16`` (or ``'fp32'|'bf16'|'fp16'``); the
            half types run under autocast.
        batch_size: Images per forward (fixed; see the module docstring).
        max_batch_pixels: At most this many label-map pixels per forward (fewer images for big maps; see the
            module docstring); ``None``: always ``batch_size``.
        checkpoint_path: The file the generator came from, if any (recorded in manifests).
    """

    def __init__(
        self,
        generator: torch.nn.Module,
        label_space: LabelSpace,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str = torch.float32,
        batch_size: int = 8,
        checkpoint_path: str | os.PathLike | None = None,
        max_batch_pixels: int | None = DEFAULT_MAX_BATCH_PIXELS,
    ) -> None:
        config = generator.config
        if config.num_classes != label_space.num_classes or config.ignore_index != label_space.ignore_index:
            raise ValueError(
                f"generator has {config.num_classes} classes (ignore {config.ignore_index}) but label space "
                f"{label_space.name!r} has {label_space.num_classes} (ignore {label_space.ignore_index})"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_batch_pixels is not None and max_batch_pixels < 1:
            raise ValueError(f"max_batch_pixels must be >= 1 or None, got {max_batch_pixels}")
        if device is None:
            device = next(generator.parameters()).device
        self.device = torch.device(device)
        self.dtype = parse_dtype(dtype)
        self.generator = generator.eval().to(self.device)
        self.label_space = label_space
        self.batch_size = batch_size
        self.max_batch_pixels = max_batch_pixels
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self._checkpoint_sha256: str | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        batch_size: int = 8,
        max_batch_pixels: int | None = DEFAULT_MAX_BATCH_PIXELS,
    ) -> Synthesizer:
        """Load a generator file written by ``save_generator_checkpoint`` (safetensors; nothing is unpickled).

        Raises:
            CheckpointError: naming the file, if it is missing, truncated, foreign, or its weights do not fit its
                config.
        """
        from dpsims_aug.models import DPSIMSGenerator, GeneratorConfig

        ckpt = load_generator_checkpoint(path)
        try:
            config = GeneratorConfig.from_dict(ckpt.generator_config)
        except (TypeError, ValueError) as err:
            raise CheckpointError(path, f"invalid generator config ({err})") from err
        generator = DPSIMSGenerator(config)
        try:
            generator.load_state_dict(ckpt.state_dict, strict=True)
            generator.prepare_for_inference()
        except RuntimeError as first:
            # An exporter may have saved an already-fused model (no spectral-norm/batch-norm buffers).
            generator = DPSIMSGenerator(config).prepare_for_inference()
            try:
                generator.load_state_dict(ckpt.state_dict, strict=True)
            except RuntimeError:
                raise CheckpointError(path, f"weights do not match the stored generator config ({first})") from first
        return cls(generator, ckpt.label_space, device=device, dtype=dtype, batch_size=batch_size,
                   checkpoint_path=path, max_batch_pixels=max_batch_pixels)

    @property
    def config(self):
        """The generator's ``GeneratorConfig``."""
        return self.generator.config

    @property
    def stride(self) -> int:
        """Height and width are padded to multiples of this."""
        return self.config.stride

    @property
    def checkpoint_sha256(self) -> str | None:
        """SHA-256 of the checkpoint file (computed once), or ``None`` for an in-memory generator."""
        if self._checkpoint_sha256 is None and self.checkpoint_path is not None:
            self._checkpoint_sha256 = file_sha256(self.checkpoint_path)
        return self._checkpoint_sha256

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the model runs at for a ``height x width`` label map."""
        s = self.stride
        return -(-height // s) * s, -(-width // s) * s

    def batch_size_for(self, height: int, width: int) -> int:
        """Images per forward for ``height x width`` label maps: ``batch_size``, fewer where that many would exceed
        ``max_batch_pixels`` (at least 1)."""
        if self.max_batch_pixels is None:
            return self.batch_size
        return max(1, min(self.batch_size, self.max_batch_pixels // (height * width)))

    def check_labels(self, labels: np.ndarray | torch.Tensor, source: str | os.PathLike | None = None) -> None:
        """Raise :class:`LabelMapError` (naming ``source`` and the ids) if ``labels`` holds ids the model does not
        know: anything outside ``0..C-1`` that is not the ignore index."""
        c, ignore = self.label_space.num_classes, self.label_space.ignore_index
        values = torch.as_tensor(np.asarray(labels, dtype=np.int32) if isinstance(labels, np.ndarray) else labels)
        bad_mask = ((values < 0) | (values >= c)) & (values != ignore)
        if bool(bad_mask.any()):
            bad = torch.unique(values[bad_mask]).tolist()
            shown = ", ".join(map(str, bad[:20])) + (" ..." if len(bad) > 20 else "")
            raise LabelMapError(
                source,
                f"contiguous label ids {{{shown}}} are outside 0..{c - 1} and are not the ignore index {ignore} "
                f"(label space {self.label_space.name!r}); map raw ids with LabelSpace.to_contiguous first",
            )

    def synthesize(
        self,
        labels: Sequence[np.ndarray] | np.ndarray | torch.Tensor,
        seeds: Sequence[int],
        sources: Sequence[str | os.PathLike | None] | None = None,
        edges: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Images for contiguous label maps, one per seed.

        Args:
            labels: ``B`` label maps of one size ``H x W`` (arrays or a ``(B, H, W)`` tensor) holding contiguous ids
                ``0..C-1`` or the ignore index.
            seeds: One seed per label map (normally from :func:`derive_seed`).
            sources: Names used in error messages (file paths), one per label map.
            edges: ``(B, 1, H, W)`` instance boundaries for generators that use them
                (:func:`dpsims_aug.instance_edges.instance_edges` of the instance maps; ``generate`` and
                ``DPSIMSAugment`` pass them); by default the label map's own class boundaries are used (a subset of
                the instance boundaries). Ignored by generators without instance edges.

        Returns:
            ``(B, H, W, 3)`` uint8 RGB.

        Raises:
            LabelMapError: for unknown ids, naming the source and the ids.
            ValueError: for mismatched shapes or counts.
        """
        batch = _as_label_batch(labels)
        n, h, w = batch.shape
        if len(seeds) != n:
            raise ValueError(f"got {n} label maps but {len(seeds)} seeds")
        if sources is not None and len(sources) != n:
            raise ValueError(f"got {n} label maps but {len(sources)} sources")
        for i in range(n):
            self.check_labels(batch[i], None if sources is None else sources[i])
        ph, pw = self.padded_size(h, w)
        ignore = self.label_space.ignore_index
        if (ph, pw) != (h, w):
            padded = torch.full((n, ph, pw), ignore, dtype=batch.dtype)
            padded[:, :h, :w] = batch
            batch = padded
        if edges is not None and tuple(edges.shape) != (n, 1, h, w):
            raise ValueError(f"edges must have shape {(n, 1, h, w)}, got {tuple(edges.shape)}")
        out = np.empty((n, h, w, 3), dtype=np.uint8)
        per_forward = self.batch_size_for(h, w)
        for start in range(0, n, per_forward):
            stop = min(start + per_forward, n)
            chunk_edges = None
            if edges is not None:
                chunk_edges = torch.zeros(stop - start, 1, ph, pw)
                chunk_edges[:, :, :h, :w] = edges[start:stop].float()
            images = self._forward(batch[start:stop], [int(s) for s in seeds[start:stop]], chunk_edges, per_forward)
            out[start:stop] = images[:, :h, :w]
        return out

    __call__ = synthesize

    def _forward(self, labels: torch.Tensor, seeds: list[int], edges: torch.Tensor | None,
                 per_forward: int) -> np.ndarray:
        """One model call at exactly ``per_forward`` images (short batches padded with copies of the last one)."""
        from dpsims_aug.models.image_range import unit_range_to_uint8

        real = labels.shape[0]
        pad = per_forward - real
        if pad:
            labels = torch.cat([labels, labels[-1:].expand(pad, -1, -1)])
            seeds = seeds + [seeds[-1]] * pad
            if edges is not None:
                edges = torch.cat([edges, edges[-1:].expand(pad, -1, -1, -1)])
        labels = labels.to(self.device, non_blocking=True).long()
        if self.config.use_instance_edges:
            edges = label_edges(labels) if edges is None else edges.to(self.device)
        else:
            edges = None
        noise = self.generator.sample_noise(seeds, device=self.device)
        autocast = (
            contextlib.nullcontext() if self.dtype == torch.float32 else torch.autocast(self.device.type, self.dtype)
        )
        with torch.inference_mode(), autocast:
            images = self.generator(labels, noise, edges) if edges is not None else self.generator(labels, noise)
            images = unit_range_to_uint8(images[:real])
        return images.permute(0, 2, 3, 1).cpu().numpy()


def _as_label_batch(labels: Sequence[np.ndarray] | np.ndarray | torch.Tensor) -> torch.Tensor:
    """Stack label maps of one size into a ``(B, H, W)`` integer CPU tensor."""
    if isinstance(labels, torch.Tensor):
        batch = labels.detach().cpu()
    elif isinstance(labels, np.ndarray):
        batch = torch.from_numpy(np.ascontiguousarray(labels))
    else:
        if len(labels) == 0:
            raise ValueError("synthesize needs at least one label map")
        shapes = {np.shape(a) for a in labels}
        if len(shapes) != 1:
            raise ValueError(f"label maps in one call must share one size, got {sorted(shapes)}")
        batch = torch.from_numpy(np.stack([np.asarray(a) for a in labels]))
    if batch.dim() == 2:
        batch = batch.unsqueeze(0)
    if batch.dim() != 3 or batch.dtype.is_floating_point or batch.dtype == torch.bool:
        raise ValueError(f"labels must be integer (B, H, W) or a list of (H, W) maps, got {tuple(batch.shape)}")
    if batch.dtype == torch.uint16:
        batch = batch.to(torch.int32)
    return batch
