"""Colour statistics and KID (with real-vs-real floors): metrics that catch what a segmenter pays for."""

from __future__ import annotations

import numpy as np
import pytest

from dpsims_aug.metrics.colour import ColourStatistics, compare
from dpsims_aug.metrics.fid import kernel_inception_distance


def _scene(rng, h=16, w=16):
    labels = np.zeros((h, w), np.int64)
    labels[h // 2 :] = 1
    labels[0, 0] = 255
    image = rng.integers(40, 200, (h, w, 3)).astype(np.uint8)
    return image, labels


def _stats(pairs):
    stats = ColourStatistics(num_classes=2)
    for image, labels in pairs:
        stats.update(image, labels)
    return stats


def test_identical_sets_have_no_colour_gap():
    rng = np.random.default_rng(0)
    pairs = [_scene(rng) for _ in range(4)]
    out = compare(_stats(pairs), _stats(pairs))
    assert out["colour_class_distance"] == 0 and out["contrast_ratio"] == pytest.approx(1.0)
    assert out["clipped_white_fake"] == out["clipped_white_real"] == 0


def test_class_colour_shift_contrast_and_clipping_are_measured():
    rng = np.random.default_rng(1)
    real = [_scene(rng) for _ in range(4)]
    shifted = []
    for image, labels in real:
        image = image.astype(np.int64).copy()
        image[labels == 1, 0] += 30  # class 1 redder by 30; class 0 unchanged
        shifted.append((image.astype(np.uint8), labels))
    out = compare(_stats(shifted), _stats(real))
    assert out["colour_class_distance_max"] == pytest.approx(30.0)
    assert out["colour_class_distance"] == pytest.approx(15.0)  # mean over the two classes
    stretched = [(np.clip((im.astype(float) - 120) * 2 + 120, 0, 255).astype(np.uint8), lab) for im, lab in real]
    assert compare(_stats(stretched), _stats(real))["contrast_ratio"] > 1.5
    blown = []
    for image, labels in real:
        image = image.copy()
        image[:4] = 255  # a quarter of every image white
        blown.append((image, labels))
    out = compare(_stats(blown), _stats(real))
    assert out["clipped_white_fake"] == pytest.approx(0.25) and out["clipped_white_ratio"] == pytest.approx(2500)


def test_colour_statistics_refuse_mismatched_sizes():
    with pytest.raises(ValueError, match="does not match"):
        ColourStatistics(2).update(np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4), np.int64))


def test_kid_is_unbiased_where_fid_is_not():
    """Two samples of one distribution: KID averages to ~0 at any sample count; a shifted one scores clearly more."""
    rng = np.random.default_rng(0)
    same = [kernel_inception_distance(rng.normal(size=(40, 16)), rng.normal(size=(40, 16)))[0] for _ in range(30)]
    shifted = kernel_inception_distance(rng.normal(size=(40, 16)), rng.normal(0.5, 1.0, size=(40, 16)))[0]
    assert abs(np.mean(same)) < 0.2 * shifted
    assert np.std(same) < 0.3 * shifted
    x, y = rng.normal(size=(30, 8)), rng.normal(0.3, 1.0, size=(50, 8))
    assert kernel_inception_distance(x, y, subset_size=20, seed=1)[0] == kernel_inception_distance(
        x, y, subset_size=20, seed=1)[0]
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(x[:1], y)
