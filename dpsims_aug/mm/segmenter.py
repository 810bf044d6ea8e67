"""An mmseg segmenter as a function of RGB images: predictions and per-pixel losses in contiguous class ids.

Used by the ``miou`` metric, TSTR's evaluation, ``dpsims-aug filter`` and the trainer's evaluation hook. The
segmenter's class ``c`` must be contiguous class ``c`` of the generator's :class:`~dpsims_aug.labels.LabelSpace`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from dpsims_aug.labels import IGNORE_INDEX
from dpsims_aug.mm.checkpoints import load_mmengine_checkpoint

__all__ = ["Segmenter"]


class Segmenter:
    """An mmseg segmenter that labels RGB images with contiguous class ids.

    Args:
        model: A built mmseg segmentor with ``cfg`` (its config, including ``test_pipeline``) set, in eval mode.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        self.num_classes = int(model.decode_head.num_classes)

    @classmethod
    def from_files(
        cls, config: str | os.PathLike, checkpoint: str | os.PathLike | None, device: str | torch.device = "cpu"
    ) -> Segmenter:
        """Build the segmenter of an mmseg config and load ``checkpoint`` (see :func:`load_mmengine_checkpoint`).

        ``checkpoint=None`` keeps the random initialisation (plumbing tests only).
        """
        from mmengine.runner import load_state_dict
        from mmseg.apis import init_model

        model = init_model(str(config), checkpoint=None, device="cpu")
        if checkpoint is not None:
            ckpt = load_mmengine_checkpoint(checkpoint)
            state = ckpt["state_dict"]
            if state and all(k.startswith("module.") for k in state):
                state = {k[len("module."):]: v for k, v in state.items()}
            load_state_dict(model, state, strict=True)
            meta = ckpt.get("meta") or {}
            if isinstance(meta.get("dataset_meta"), dict):
                model.dataset_meta = meta["dataset_meta"]
        return cls(model.to(torch.device(device)))

    @torch.inference_mode()
    def pixel_losses(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                     ignore_index: int = IGNORE_INDEX) -> list[np.ndarray]:
        """Per-pixel cross-entropy of the segmenter's prediction against contiguous ``labels`` (``[H, W]`` float32
        per image, at the image's size; ``nan`` where the label is ``ignore_index``)."""
        out = []
        for logits, label in zip(self._logits(images), labels):
            label = torch.from_numpy(np.asarray(label, dtype=np.int64))
            valid = label != ignore_index
            log_p = torch.log_softmax(logits.float(), dim=0)
            loss = torch.full(label.shape, float("nan"))
            loss[valid] = -log_p.gather(0, label.clamp(0, logits.shape[0] - 1)[None])[0][valid]
            out.append(loss.numpy())
        return out

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``[H, W, 3]`` uint8 RGB images (any sizes) -> ``[H, W]`` int64 class maps at the images' sizes.

        Runs the config's ``test_pipeline`` (resize, normalisation by the model's data preprocessor), like
        ``mmseg.apis.inference_model``.
        """
        return [result.pred_sem_seg.data[0].cpu().numpy().astype(np.int64) for result in self._infer(images)]

    def _logits(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """``[C, H, W]`` class logits per image, at the image's size (CPU)."""
        return [result.seg_logits.data.cpu() for result in self._infer(images)]

    def _infer(self, images: Sequence[np.ndarray]) -> list:
        """mmseg's ``SegDataSample`` result of each image (``mmseg.apis.inference_model``)."""
        from mmseg.apis import inference_model

        # mmseg's data preprocessor batches only same-size inputs at test time: one call per image size.
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(np.shape(image), []).append(i)
        out: list = [None] * len(images)
        for indices in by_shape.values():
            # mmseg pipelines expect images as mmcv reads them (BGR); the data preprocessor converts back.
            bgr = [np.ascontiguousarray(np.asarray(images[i])[..., ::-1]) for i in indices]
            for i, result in zip(indices, inference_model(self.model, bgr)):
                out[i] = result
        return out
