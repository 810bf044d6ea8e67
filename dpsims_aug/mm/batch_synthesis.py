"""Online synthesis in the segmenter's data preprocessor: one generator per process (per GPU), one forward per batch.

``DPSIMSAugment`` (online synthesis) renders in the dataloader workers, one sample at a time, each worker holding its
own generator (on the GPU only with 'spawn' workers). A GPU user wants the other shape: the workers only *decide*
and the model's data preprocessor renders all replaced samples of the batch in one forward, on the model's device,
in bf16 there. Two parts, used together in an mmseg config (see ``augment/embedded/fastscnn_embedded_batch.py``):

* :class:`DPSIMSSelect` (a pipeline transform, last before ``PackSegInputs``): the same draws as
  ``DPSIMSAugment`` (per label map and visit: the ``prob`` decision, then the noise seed), so the share and
  the seeding are the same; it stores the noise seed (``dpsims_seed``, -1 = keep the real image) and the final
  (cropped, flipped) label map in the generator's ids (``dpsims_labels``), which ``PackSegInputs`` carries when
  its ``meta_keys`` name them (:data:`PACK_META_KEYS`);
* :class:`DPSIMSDataPreprocessor` (``model.data_preprocessor``): a ``SegDataPreProcessor`` that, in training
  batches, replaces the marked samples' images by generated ones before normalizing. Labels are untouched.

The synthetic image is made for the label map *after* the pipeline's geometric transforms (so it is aligned by
construction) and skips the photometric ones (they ran on the real image before the decision took effect).
Size policy as ``DPSIMSAugment``'s ``'resize'``: labels are nearest-resized to about the generator's training area
(rounded up to its stride, never upscaled), the image is rendered there and resized back (bilinear).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS, TRANSFORMS

from dpsims_aug.labels import LabelSpace
from dpsims_aug.mm.transforms import DPSIMSAugment, synthesis_size
from dpsims_aug.models.image_range import unit_range_to_uint8
from dpsims_aug.synthesis import default_checkpoint_path

__all__ = ["PACK_META_KEYS", "DPSIMSDataPreprocessor", "DPSIMSSelect", "synthesis_size"]

# mmseg's PackSegInputs default meta keys plus the two DPSIMSSelect adds.
PACK_META_KEYS = ("img_path", "seg_map_path", "ori_shape", "img_shape", "pad_shape", "scale_factor", "flip",
                  "flip_direction", "reduce_zero_label", "dpsims_seed", "dpsims_labels")


@TRANSFORMS.register_module()
class DPSIMSSelect(DPSIMSAugment):
    """Decide which samples :class:`DPSIMSDataPreprocessor` replaces, with ``DPSIMSAugment``'s online draws.

    Place it last before ``PackSegInputs(meta_keys=PACK_META_KEYS)``. Arguments as ``DPSIMSAugment``
    (``checkpoint`` must be the preprocessor's generator, whose label space it reads, without the weights).
    Added keys: ``dpsims_seed`` (noise seed, or -1), ``dpsims_labels`` (uint8 generator ids of ``gt_seg_map``, or
    None), ``dpsims_augmented``.
    """

    def __init__(self, checkpoint: str | os.PathLike | None = None, prob: float = 0.5, seed: int = 0,
                 label_space=None, reduce_zero_label: bool | None = None, contiguous_labels: bool = False) -> None:
        super().__init__(checkpoint=checkpoint, prob=prob, seed=seed, label_space=label_space,
                         reduce_zero_label=reduce_zero_label, contiguous_labels=contiguous_labels)
        self._model_space: LabelSpace | None = None

    @property
    def model_label_space(self) -> LabelSpace:
        # The label space only: a worker needs no generator weights to translate ids.
        if self._model_space is None:
            from dpsims_aug.checkpoint import load_generator_checkpoint

            self._model_space = load_generator_checkpoint(self.checkpoint, weights=False).label_space
        return self._model_space

    def transform(self, results: dict) -> dict:
        """Mark the sample (see the class docstring); the image is not touched here."""
        # DPSIMSAugment.transform's draws: the decision (in _draw), then the noise seed.
        rng = self._draw(results)
        replace = rng is not None
        results["dpsims_seed"] = int(rng.integers(1 << 62)) if replace else -1
        results["dpsims_labels"] = self.model_labels(results) if replace else None
        results["dpsims_augmented"] = replace
        return results

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(prob={self.prob}, checkpoint='{self.checkpoint}', seed={self.seed}, "
                f"reduce_zero_label={self.reduce_zero_label}, contiguous_labels={self.contiguous_labels})")


@MODELS.register_module()
class DPSIMSDataPreprocessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that first renders the images of the samples :class:`DPSIMSSelect` marked.

    Args:
        checkpoint: Generator file (``dpsims-aug export``); None = the bundled embedded model. The same file as the
            pipeline's ``DPSIMSSelect``.
        synthesis_dtype: ``'auto'`` (bf16 on CUDA, fp32 elsewhere), ``'fp32'``, ``'bf16'`` or ``'fp16'``.
        **kwargs: ``SegDataPreProcessor``'s (mean, std, bgr_to_rgb, size, pad_val, seg_pad_val, ...).

    The generator is built on first use on this module's device and kept outside the module's parameters and
    state dict (segmenter checkpoints do not grow; DDP does not see it).
    """

    def __init__(self, checkpoint: str | os.PathLike | None = None, synthesis_dtype: str = "auto", **kwargs) -> None:
        super().__init__(**kwargs)
        self.checkpoint = str(checkpoint if checkpoint is not None else default_checkpoint_path())
        if synthesis_dtype not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"DPSIMSDataPreprocessor: synthesis_dtype must be auto, fp32, bf16 or fp16, got "
                             f"{synthesis_dtype!r}")
        self.synthesis_dtype = synthesis_dtype
        self.__dict__["_synth"] = None  # a plain attribute: never a submodule
        self.last_replaced = 0  # samples rendered in the last training batch (for logs and tests)

    def synthesizer(self):
        """The generator, on this module's device (built on first use)."""
        synth = self.__dict__["_synth"]
        if synth is None or synth.device != self.device:
            from dpsims_aug.synthesis import Synthesizer

            dtype = self.synthesis_dtype
            if dtype == "auto":
                dtype = "bf16" if self.device.type == "cuda" else "fp32"
            synth = Synthesizer.from_checkpoint(self.checkpoint, device=self.device, dtype=dtype)
            if synth.config.use_instance_edges:
                raise ValueError(f"DPSIMSDataPreprocessor: {self.checkpoint} uses instance edges, which the batch "
                                 "path does not carry; use DPSIMSAugment in the pipeline")
            self.__dict__["_synth"] = synth
        return synth

    @torch.no_grad()
    def render(self, labels: list[torch.Tensor], seeds: list[int]) -> list[torch.Tensor]:
        """uint8 BGR ``(3, H, W)`` images on this device for generator-id label maps ``(H, W)``: one forward per
        distinct size."""
        synth = self.synthesizer()
        gen, cfg = synth.generator, synth.config
        out: list[torch.Tensor | None] = [None] * len(labels)
        sizes: dict[tuple[int, int], list[int]] = {}
        for i, lab in enumerate(labels):
            sizes.setdefault(tuple(lab.shape), []).append(i)
        autocast = (torch.autocast(self.device.type, synth.dtype) if synth.dtype != torch.float32
                    else torch.autocast(self.device.type, enabled=False))
        for (h, w), members in sizes.items():
            batch = torch.stack([labels[i] for i in members]).to(self.device).long()
            for i in members:
                synth.check_labels(labels[i], f"DPSIMSSelect label map {i}")
            sh, sw = synthesis_size(h, w, tuple(cfg.image_size), synth.stride)
            small = batch if (sh, sw) == (h, w) else F.interpolate(
                batch[:, None].float(), size=(sh, sw), mode="nearest")[:, 0].long()
            noise = gen.sample_noise([seeds[i] for i in members], device=self.device)
            with autocast:
                images = gen(small, noise).float()
            if (sh, sw) != (h, w):
                images = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False)
            images = unit_range_to_uint8(images)
            for j, i in enumerate(members):
                out[i] = images[j].flip(0)  # RGB -> BGR, as LoadImageFromFile gives
        return out

    def forward(self, data: dict, training: bool = False) -> dict:
        if training:
            data = self.cast_data(data)
            samples = data.get("data_samples") or []
            marked = [i for i, s in enumerate(samples) if int(s.metainfo.get("dpsims_seed", -1)) >= 0]
            self.last_replaced = len(marked)
            if marked:
                labels = []
                for i in marked:
                    lab = samples[i].metainfo.get("dpsims_labels")
                    if lab is None:
                        raise KeyError("DPSIMSDataPreprocessor: a marked sample has no dpsims_labels; pack them with "
                                       "PackSegInputs(meta_keys=dpsims_aug.mm.batch_synthesis.PACK_META_KEYS)")
                    lab = torch.as_tensor(np.asarray(lab))
                    img_shape = tuple(data["inputs"][i].shape[-2:])
                    if tuple(lab.shape) != img_shape:
                        raise ValueError(f"DPSIMSDataPreprocessor: dpsims_labels {tuple(lab.shape)} != image "
                                         f"{img_shape}: place DPSIMSSelect after every geometric transform")
                    labels.append(lab)
                images = self.render(labels, [int(samples[i].metainfo["dpsims_seed"]) for i in marked])
                inputs = list(data["inputs"])
                for i, img in zip(marked, images):
                    inputs[i] = img.to(inputs[i].dtype)
                data["inputs"] = inputs
        return super().forward(data, training)
