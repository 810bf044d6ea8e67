"""mIoU of generated images: a segmenter trained on real images labels them, and its prediction is scored against
the label map the images were generated from.

The scoring follows mmseg's ``IoUMetric``: pixels whose ground truth is ``ignore_index`` are left out, intersections
and unions are summed over the whole set before dividing, and classes with an empty union (absent from both the
predictions and the ground truth) are left out of the mean. Values are percentages.

The segmenter's class ``c`` must be contiguous class ``c`` of the generator's :class:`~dpsims_aug.labels.LabelSpace`
(true for mmseg's ADE-20K with ``reduce_zero_label``, Cityscapes train ids and COCO-Stuff-171, as for our presets).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dpsims_aug.labels import IGNORE_INDEX
from dpsims_aug.metrics.registry import EvalBatch, register_metric

if TYPE_CHECKING:
    import torch

    from dpsims_aug.mm.segmenter import Segmenter

__all__ = ["MIoUMetric", "confusion_matrix", "iou_per_class", "mean_iou"]


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
