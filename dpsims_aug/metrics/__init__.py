"""Fidelity metrics of generated images: FID and KID (offline TF-Inception) with their real-vs-real floors, colour
statistics against the real images, mIoU under a segmenter trained on real images, diversity across seeds, and
train-on-synthetic/test-on-real (:mod:`dpsims_aug.metrics.tstr`); the streaming ones behind a small registry
(:data:`METRICS`, :func:`build_metrics`).

``dpsims-aug evaluate`` (:func:`dpsims_aug.metrics.evaluate.evaluate`) runs them on a generator checkpoint and a
dataset split; the GAN trainer's ``GANEvaluationHook`` runs them during training.
"""

from dpsims_aug.metrics.colour import ColourMetric, ColourStatistics
from dpsims_aug.metrics.diversity import (
    BackboneFeatures,
    DiversityMetric,
    mean_pairwise_cosine_distance,
    mean_pairwise_pixel_distance,
)
from dpsims_aug.metrics.fid import (
    FeatureStats,
    FIDMetric,
    InceptionFeatures,
    dataset_fingerprint,
    fid_from_stats,
    frechet_distance,
    kernel_inception_distance,
    reference_stats,
)
from dpsims_aug.metrics.miou import MIoUMetric, confusion_matrix, iou_per_class, mean_iou
from dpsims_aug.metrics.registry import METRICS, EvalBatch, Metric, build_metrics, register_metric

__all__ = [
    "METRICS",
    "BackboneFeatures",
    "ColourMetric",
    "ColourStatistics",
    "DiversityMetric",
    "EvalBatch",
    "FIDMetric",
    "FeatureStats",
    "InceptionFeatures",
    "MIoUMetric",
    "Metric",
    "build_metrics",
    "confusion_matrix",
    "dataset_fingerprint",
    "fid_from_stats",
    "frechet_distance",
    "iou_per_class",
    "kernel_inception_distance",
    "mean_iou",
    "mean_pairwise_cosine_distance",
    "mean_pairwise_pixel_distance",
    "reference_stats",
    "register_metric",
]
