"""A small metric registry (NVlabs style): name -> factory of a streaming accumulator.

Every metric sees the same stream of :class:`EvalBatch` es (label maps, the images generated from them for several
seeds, optionally the real images) in a single pass, so synthesis runs once however many metrics are computed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from dpsims_aug.labels import IGNORE_INDEX

if TYPE_CHECKING:
    from dpsims_aug.metrics.fid import FeatureStats
    from dpsims_aug.metrics.miou import Segmenter

__all__ = ["METRICS", "EvalBatch", "Metric", "MetricOptions", "build_metrics", "register_metric"]


@dataclass
class EvalBatch:
    """Label maps with their generated (and optionally real) images.

    Attributes:
        labels: Contiguous label maps ``[H, W]`` (sizes may differ between maps).
        fakes: Per label map, ``[S, H, W, 3]`` uint8 RGB images, one per seed.
        reals: Per label map, its real ``[H, W, 3]`` uint8 RGB image, or ``None`` when not loaded.
        keys: Names of the label maps (for error messages and per-map records).
    """

    labels: list[np.ndarray]
    fakes: list[np.ndarray]
    reals: list[np.ndarray] | None = None
    keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.fakes) != len(self.labels) or (self.reals is not None and len(self.reals) != len(self.labels)):
            raise ValueError("EvalBatch needs one entry of fakes (and reals) per label map")


@dataclass
class MetricOptions:
    """What metric factories may use.

    Attributes:
        device: Where feature networks run.
        batch_size: Images per feature-network forward.
        ignore_index: Unlabeled value in label maps.
        fid_reference: Precomputed Inception statistics of the real images; without them the FID metric
            accumulates them from ``EvalBatch.reals``.
        segmenter: The segmenter for ``miou``.
        cache_dir: FID statistics cache folder (``None``: the default).
        num_classes: Number of contiguous classes (per-class metrics such as ``colour``).
        real_features: Inception features ``[N, D]`` of the real images of the label maps, in stream order,
            computed once by a caller that evaluates repeatedly (KID and the floors then use them).
    """

    device: str = "cpu"
    batch_size: int = 16
    ignore_index: int = IGNORE_INDEX
    fid_reference: FeatureStats | None = None
    segmenter: Segmenter | None = None
    cache_dir: Path | None = None
    num_classes: int | None = None
    real_features: np.ndarray | None = None


class Metric(Protocol):
    """A streaming metric: fed every batch once, then asked for its values."""

    def update(self, batch: EvalBatch) -> None:
        """Account for one batch."""

    def compute(self) -> dict[str, float]:
        """The metric's values (several related numbers may come back, e.g. ``miou_fake`` and ``miou_real``)."""


MetricFactory = Callable[[MetricOptions], Metric]
METRICS: dict[str, MetricFactory] = {}


def register_metric(name: str) -> Callable[[MetricFactory], MetricFactory]:
    """Decorator: register a metric factory (a class or function taking :class:`MetricOptions`) under ``name``."""

    def wrap(factory: MetricFactory) -> MetricFactory:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = factory
        return factory

    return wrap


def build_metrics(names: Iterable[str], options: MetricOptions) -> dict[str, Metric]:
    """Instantiate the named metrics.

    Raises:
        KeyError: for an unknown name (listing the known ones).
    """
    import dpsims_aug.metrics  # noqa: F401  (registers the built-in metrics)

    metrics = {}
    for name in names:
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
        metrics[name] = METRICS[name](options)
    return metrics
