"""Colour statistics of generated vs real images: the failures a segmenter pays for and FID hides.

A generator can draw the right shapes (high mIoU of its images under a real-trained segmenter) and still teach a
segmenter the wrong appearance: blown-out regions, lighting the real data never has, classes in the wrong colours.
These numbers measure that directly, in 0-255 RGB units, against the real images of the same label maps:

* ``colour_class_distance``: per class, the Euclidean distance between the mean RGB of its generated pixels and of
  its real pixels, averaged over the classes present in both (``colour_class_distance_max`` the worst class);
* ``contrast_ratio``: mean per-image luminance standard deviation, generated / real (1 = same contrast);
* ``clipped_white_*`` / ``clipped_black_*``: share of near-white (every channel >= 250) and near-black (every
  channel <= 5) pixels, generated and real, and their ratio;
* ``mean_rgb_fake`` / ``mean_rgb_real``: the overall mean colour.
"""

from __future__ import annotations

import numpy as np

from dpsims_aug.labels import IGNORE_INDEX
from dpsims_aug.metrics.registry import EvalBatch, register_metric

__all__ = ["WHITE_LEVEL", "BLACK_LEVEL", "ColourStatistics", "ColourMetric", "luminance"]

WHITE_LEVEL = 250  # a pixel whose every channel is >= this is "clipped white"
BLACK_LEVEL = 5  # ... whose every channel is <= this is "clipped black"
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601


def luminance(image: np.ndarray) -> np.ndarray:
    """BT.601 luma ``[H, W]`` (0-255 float) of a uint8 RGB image ``[H, W, 3]``."""
    return image.astype(np.float64) @ _LUMA


class ColourStatistics:
    """Accumulates per-class colour sums, per-image contrast and clipped-pixel counts of one image set."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.class_sum = np.zeros((num_classes, 3), np.float64)
        self.class_count = np.zeros(num_classes, np.int64)
        self.contrasts: list[float] = []
        self.pixels = 0
        self.white = 0
        self.black = 0
        self.rgb_sum = np.zeros(3, np.float64)

    def update(self, image: np.ndarray, labels: np.ndarray) -> None:
        """Add one uint8 RGB image ``[H, W, 3]`` with its contiguous label map ``[H, W]``."""
        if image.shape[:2] != labels.shape or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {image.shape} does not match label map {labels.shape}")
        flat, ids = image.reshape(-1, 3), labels.reshape(-1).astype(np.int64)
        valid = (ids != self.ignore_index) & (ids >= 0) & (ids < self.num_classes)
        for c in range(3):
            self.class_sum[:, c] += np.bincount(ids[valid], weights=flat[valid, c], minlength=self.num_classes)
        self.class_count += np.bincount(ids[valid], minlength=self.num_classes)
        self.contrasts.append(float(luminance(image).std()))
        self.pixels += flat.shape[0]
        self.white += int((flat.min(axis=1) >= WHITE_LEVEL).sum())
        self.black += int((flat.max(axis=1) <= BLACK_LEVEL).sum())
        self.rgb_sum += flat.sum(axis=0, dtype=np.float64)

    def class_means(self) -> np.ndarray:
        """Mean RGB per class ``[C, 3]`` (NaN for classes never seen)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.class_sum / self.class_count[:, None]

    @property
    def contrast(self) -> float:
        """Mean per-image luminance standard deviation."""
        return float(np.mean(self.contrasts)) if self.contrasts else float("nan")

    @property
    def white_rate(self) -> float:
        return self.white / self.pixels if self.pixels else float("nan")

    @property
    def black_rate(self) -> float:
        return self.black / self.pixels if self.pixels else float("nan")

    @property
    def mean_rgb(self) -> np.ndarray:
        return self.rgb_sum / max(self.pixels, 1)


def compare(fake: ColourStatistics, real: ColourStatistics) -> dict[str, float]:
    """The colour metrics of ``fake`` against ``real`` (see the module docstring)."""
    both = (fake.class_count > 0) & (real.class_count > 0)
    dist = np.linalg.norm(fake.class_means() - real.class_means(), axis=1)[both]
    out = {
        "colour_class_distance": float(dist.mean()) if dist.size else float("nan"),
        "colour_class_distance_max": float(dist.max()) if dist.size else float("nan"),
        "contrast_fake": fake.contrast,
        "contrast_real": real.contrast,
        "contrast_ratio": fake.contrast / real.contrast if real.contrast > 0 else float("nan"),
        "clipped_white_fake": fake.white_rate,
        "clipped_white_real": real.white_rate,
        "clipped_black_fake": fake.black_rate,
        "clipped_black_real": real.black_rate,
    }
    # Ratios against a floor of one pixel in 10^4, so a real set without any clipped pixel does not divide by 0.
    out["clipped_white_ratio"] = fake.white_rate / max(real.white_rate, 1e-4)
    out["clipped_black_ratio"] = fake.black_rate / max(real.black_rate, 1e-4)
    for name, stats in (("fake", fake), ("real", real)):
        for channel, value in zip("rgb", stats.mean_rgb):
            out[f"mean_{channel}_{name}"] = float(value)
    return out


@register_metric("colour")
class ColourMetric:
    """Colour statistics of every generated image (all seeds) against the real images of the same label maps."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.fake = ColourStatistics(num_classes, ignore_index)
        self.real = ColourStatistics(num_classes, ignore_index)

    def update(self, batch: EvalBatch) -> None:
        if batch.reals is None:
            raise ValueError("the colour metric needs the real images in every batch")
        for labels, fakes, real in zip(batch.labels, batch.fakes, batch.reals):
            for fake in fakes:
                self.fake.update(fake, labels)
            self.real.update(real, labels)

    def compute(self) -> dict[str, float]:
        return compare(self.fake, self.real)
