"""A small metric registry (NVlabs style): name -> factory of a streaming accumulator.

Every metric sees the same stream of :class:`EvalBatch` es (label maps, the images generated from them for several
seeds, optionally the real images) in a single pass, so synthesis runs once however many metrics are computed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["METRICS", "EvalBatch", "Metric", "build_metrics", "register_metric"]


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


class Metric(Protocol):
    """A streaming metric: fed every batch once, then asked for its values."""

    def update(self, batch: EvalBatch) -> None:
        """Account for one batch."""

    def compute(self) -> dict[str, float]:
        """The metric's values (several related numbers may come back, e.g. ``miou_fake`` and ``miou_real``)."""


MetricFactory = Callable[..., Metric]
METRICS: dict[str, MetricFactory] = {}


def register_metric(name: str) -> Callable[[MetricFactory], MetricFactory]:
    """Decorator: register a metric factory (a class or function; its keyword arguments are its settings)."""

    def wrap(factory: MetricFactory) -> MetricFactory:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = factory
        return factory

    return wrap


def build_metrics(metrics: Iterable[str] | Mapping[str, Mapping[str, Any]]) -> dict[str, Metric]:
    """Instantiate metrics: names, or ``{name: settings}`` where settings are that metric's own keyword arguments,
    e.g. ``{"fid": dict(device="cuda", reference=stats), "miou": dict(segmenter=seg)}``.

    Raises:
        KeyError: for an unknown name (listing the known ones).
        ValueError: for settings the metric does not take, or a required one missing (naming the metric).
    """
    import dpsims_aug.metrics  # noqa: F401  (registers the built-in metrics)

    settings = dict(metrics) if isinstance(metrics, Mapping) else {name: {} for name in metrics}
    built = {}
    for name, kwargs in settings.items():
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
        factory = METRICS[name]
        try:
            inspect.signature(factory).bind(**kwargs)
        except TypeError as exc:
            raise ValueError(f"metric {name!r}: {exc}; it takes {inspect.signature(factory)}") from None
        built[name] = factory(**kwargs)
    return built
