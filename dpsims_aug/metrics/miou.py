"""mIoU of generated images: a segmenter trained on real images labels them, and its prediction is scored against
the label map the images were generated from.

The scoring follows mmseg's ``IoUMetric``: pixels whose ground truth is ``ignore_index`` are left out, intersections
and unions are summed over the whole set before dividing, and classes with an empty union (absent from both the
predictions and the ground truth) are left out of the mean. Values are percentages.

The segmenter's class ``c`` must be contiguous class ``c`` of the generator's :class:`~dpsims_aug.labels.LabelSpace`
(true for mmseg's ADE-20K with ``reduce_zero_label``, Cityscapes train ids and COCO-Stuff-171, as for our presets).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dpsims_aug.labels import IGNORE_INDEX
from dpsims_aug.metrics.registry import EvalBatch, register_metric

__all__ = [
    "MIoUMetric",
    "Segmenter",
    "confusion_matrix",
    "iou_per_class",
    "load_mmengine_checkpoint",
    "mean_iou",
]


def confusion_matrix(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """``[C, C]`` int64 pixel counts, rows = ground-truth class, columns = predicted class.

    Pixels whose ground truth is ``ignore_index`` are not counted.

    Raises:
        ValueError: if the shapes differ, or a counted pixel has a ground truth or prediction outside ``0..C-1``.
    """
    pred, gt = np.asarray(pred).astype(np.int64, copy=False), np.asarray(gt).astype(np.int64, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    valid = gt != ignore_index
    pred, gt = pred[valid], gt[valid]
    for name, values in (("ground truth", gt), ("prediction", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = np.unique(values[(values < 0) | (values >= num_classes)])[:10].tolist()
            raise ValueError(f"{name} ids {bad} are outside 0..{num_classes - 1} (ignore index {ignore_index})")
    return np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU of each class in percent (``nan`` where the class is absent from both prediction and ground truth)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, 100.0 * intersection / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU in percent over the classes present in the prediction or the ground truth (``nan`` if none)."""
    iou = iou_per_class(confusion)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def load_mmengine_checkpoint(path: str | os.PathLike) -> dict:
    """Read an mmengine / mmseg checkpoint with ``torch.load(weights_only=True)``.

    The numpy and ``HistoryBuffer`` objects mmengine stores are allowed by
    :func:`~dpsims_aug.safe_loading.allow_mmengine_checkpoints` (exactly those classes); anything else that needs
    code to unpickle is refused.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: naming the file, if it cannot be read safely or holds no state dict.
    """
    from dpsims_aug.safe_loading import allow_mmengine_checkpoints

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"segmenter checkpoint not found: '{path}'")
    allow_mmengine_checkpoints()
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or damaged files
        raise ValueError(f"{path}: cannot read the checkpoint with weights_only=True ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from err
    if isinstance(checkpoint, dict) and "state_dict" not in checkpoint and checkpoint and all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        checkpoint = {"state_dict": checkpoint}  # a bare state dict
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{path}: not an mmengine checkpoint (no 'state_dict')")
    return checkpoint


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


@register_metric("miou")
class MIoUMetric:
    """mIoU of the segmenter on the generated images (every seed) and, when batches carry them, on the real images.

    Values: ``miou_fake``, ``miou_real`` and ``miou_ratio = miou_fake / miou_real`` (how much of the segmenter's
    accuracy on real images survives on generated ones).
    """

    def __init__(self, segmenter: Segmenter, ignore_index: int = IGNORE_INDEX) -> None:
        self.segmenter = segmenter
        self.ignore_index = ignore_index
        c = self.segmenter.num_classes
        self.fake = np.zeros((c, c), np.int64)
        self.real = np.zeros((c, c), np.int64)
        self.num_real = 0

    def _score(self, images: list[np.ndarray], labels: list[np.ndarray]) -> np.ndarray:
        c = self.segmenter.num_classes
        total = np.zeros((c, c), np.int64)
        for pred, gt in zip(self.segmenter.predict(images), labels):
            total += confusion_matrix(pred, gt, c, self.ignore_index)
        return total

    def update(self, batch: EvalBatch) -> None:
        """Segment the batch's generated (and real) images and add their confusion matrices."""
        fakes = [im for per_map in batch.fakes for im in per_map]
        labels = [lab for lab, per_map in zip(batch.labels, batch.fakes) for _ in range(len(per_map))]
        self.fake += self._score(fakes, labels)
        if batch.reals is not None:
            self.real += self._score(batch.reals, batch.labels)
            self.num_real += len(batch.reals)

    def compute(self) -> dict[str, float]:
        """``miou_fake`` (and ``miou_real``, ``miou_ratio`` when real images were seen), in percent."""
        out = {"miou_fake": mean_iou(self.fake)}
        if self.num_real:
            out["miou_real"] = mean_iou(self.real)
            out["miou_ratio"] = out["miou_fake"] / out["miou_real"] if out["miou_real"] > 0 else float("nan")
        return out
