"""Fidelity metrics of generated images: FID (offline TF-Inception), mIoU under a segmenter trained on real images,
and diversity across seeds, behind a small registry (:data:`METRICS`, :func:`build_metrics`).

``dpsims-aug evaluate`` (:func:`dpsims_aug.metrics.evaluate.evaluate`) runs them on a generator checkpoint and a
dataset split; the GAN trainer's ``GANEvaluationHook`` runs them during training.
"""

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
    reference_stats,
)
from dpsims_aug.metrics.miou import MIoUMetric, Segmenter, confusion_matrix, iou_per_class, mean_iou
from dpsims_aug.metrics.registry import METRICS, EvalBatch, Metric, MetricOptions, build_metrics, register_metric

__all__ = [
    "METRICS",
    "BackboneFeatures",
    "DiversityMetric",
    "EvalBatch",
    "FIDMetric",
    "FeatureStats",
    "InceptionFeatures",
    "MIoUMetric",
    "Metric",
    "MetricOptions",
    "Segmenter",
    "build_metrics",
    "confusion_matrix",
    "dataset_fingerprint",
    "fid_from_stats",
    "frechet_distance",
    "iou_per_class",
    "mean_iou",
    "mean_pairwise_cosine_distance",
    "mean_pairwise_pixel_distance",
    "reference_stats",
    "register_metric",
]
