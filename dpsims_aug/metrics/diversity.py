"""Diversity across seeds: how different the images generated from one label map are.

Two views of the same question, each the mean over all pairs of seeds (then over label maps):

* pixel space: mean absolute difference of the images on a ``[0, 1]`` scale (0 = identical images);
* feature space: cosine distance ``1 - cos`` between globally pooled last-stage features of the frozen, ImageNet
  pretrained EfficientNet-Lite0 (offline weights, :mod:`dpsims_aug.backbones`), on images resized to 224x224 (the
  backbone's training resolution). Insensitive to pixel shifts, sensitive to changes of texture and colour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dpsims_aug.metrics.registry import EvalBatch, register_metric

__all__ = ["BackboneFeatures", "DiversityMetric", "mean_pairwise_cosine_distance", "mean_pairwise_pixel_distance"]

DIVERSITY_BACKBONE = "tf_efficientnet_lite0"
DIVERSITY_SIZE = 224


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, k=1)
    if i.size == 0:
        raise ValueError(f"diversity needs at least 2 images per label map, got {n}")
    return i, j


def mean_pairwise_pixel_distance(images: np.ndarray) -> float:
    """Mean over pairs of ``mean |a - b|`` for ``[S, H, W, 3]`` uint8 images of one label map, on a [0, 1] scale."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    i, j = _pairs(len(x))
    return float(np.mean([np.abs(x[a] - x[b]).mean() for a, b in zip(i, j)]))


def mean_pairwise_cosine_distance(features: np.ndarray | torch.Tensor) -> float:
    """Mean over pairs of ``1 - cos(a, b)`` for ``[S, D]`` feature vectors."""
    f = torch.as_tensor(features, dtype=torch.float64)
    f = F.normalize(f, dim=1)
    i, j = _pairs(f.shape[0])
    cos = (f[torch.as_tensor(i)] * f[torch.as_tensor(j)]).sum(1)
    return float((1.0 - cos).clamp_min(0).mean())


class BackboneFeatures:
    """uint8 RGB images -> globally average-pooled last-stage features of a frozen ImageNet backbone.

    Args:
        device: Where the backbone runs.
        name: timm backbone name; its weights must be available offline (default EfficientNet-Lite0).
        batch_size: Images per forward.
    """

    def __init__(
        self, device: str | torch.device = "cpu", name: str = DIVERSITY_BACKBONE, batch_size: int = 16
    ) -> None:
        from dpsims_aug.backbones import FrozenBackbone

        self.device = torch.device(device)
        self.batch_size = batch_size
        # Every stage is computed anyway on the way to the last one; only the last is used.
        self.backbone = FrozenBackbone.from_name(name, weights="offline").to(self.device)

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
        """``N`` ``[H, W, 3]`` uint8 RGB images (any sizes) -> ``[N, C]`` float32 features (CPU)."""
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = [self._prepare(im) for im in images[start : start + self.batch_size]]
            feats = self.backbone(torch.stack(batch))[-1]
            out.append(feats.mean(dim=(2, 3)).float().cpu())
        return torch.cat(out) if out else torch.empty(0)

    def _prepare(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.array(image, copy=True)).to(self.device).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(DIVERSITY_SIZE, DIVERSITY_SIZE), mode="bilinear", align_corners=False,
                          antialias=True)
        return (x[0] / 127.5 - 1.0).clamp(-1, 1)  # FrozenBackbone takes [-1, 1]


@register_metric("diversity")
class DiversityMetric:
    """Mean pairwise distance between the images of one label map across seeds, averaged over label maps."""

    def __init__(self, device: str = "cpu", batch_size: int = 16) -> None:
        self.features = BackboneFeatures(device, batch_size=batch_size)
        self.pixel: list[float] = []
        self.feature: list[float] = []

    def update(self, batch: EvalBatch) -> None:
        """Score each label map's seeds (at least two per map)."""
        for per_map in batch.fakes:
            self.pixel.append(mean_pairwise_pixel_distance(per_map))
            self.feature.append(mean_pairwise_cosine_distance(self.features(per_map)))

    def compute(self) -> dict[str, float]:
        """``diversity_pixel_l1`` (mean |a - b| on [0, 1]) and ``diversity_feature_cosine`` (1 - cos)."""
        if not self.pixel:
            raise ValueError("diversity: no label maps were seen")
        return {"diversity_pixel_l1": float(np.mean(self.pixel)),
                "diversity_feature_cosine": float(np.mean(self.feature))}
