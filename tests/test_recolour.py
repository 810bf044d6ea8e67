"""Per-class recolouring of the GAN's training images (a lever for small datasets): each class on its own, a pure
function of the sample, off by default without changing what a run sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dpsims_aug.data.recolour import recolour_classes
from dpsims_aug.data.writers import write_dataset


def _image_and_labels():
    labels = np.zeros((8, 12), dtype=np.uint8)
    labels[:, 4:8], labels[:, 8:] = 1, 2
    labels[0, 0] = 255
    image = np.full((8, 12, 3), 100, dtype=np.uint8)
    return image, labels


def test_each_class_gets_one_gain_of_its_own_and_the_rest_is_untouched():
    image, labels = _image_and_labels()
    out = recolour_classes(image, labels, np.random.default_rng(3), strength=0.5, prob=1.0)
    colours = {c: np.unique(out[labels == c].reshape(-1, 3), axis=0) for c in (0, 1, 2)}
    assert all(len(v) == 1 for v in colours.values()), "a class region was not recoloured uniformly"
    assert len({tuple(v[0]) for v in colours.values()}) == 3, "two classes got the same colour"
    assert tuple(out[0, 0]) == (100, 100, 100), "the ignore index was recoloured"
    assert all(np.all(np.abs(v.astype(int) - 100) <= 100 * 0.5 * 1.25 + 1) for v in colours.values())


def test_the_same_generator_state_gives_the_same_image_and_off_draws_nothing():
    image, labels = _image_and_labels()
    a = recolour_classes(image, labels, np.random.default_rng(7), strength=0.3)
    b = recolour_classes(image, labels, np.random.default_rng(7), strength=0.3)
    assert np.array_equal(a, b)
    rng = np.random.default_rng(7)
    assert recolour_classes(image, labels, rng, strength=0.0) is image
    assert rng.uniform() == np.random.default_rng(7).uniform()
    with pytest.raises(ValueError, match="probability"):
        recolour_classes(image, labels, rng, strength=0.3, prob=1.5)


def test_the_gan_dataset_recolours_only_the_image_of_the_same_crop(tmp_path):
    from train_gan.data import SegPairDataset

    write_dataset(tmp_path / "data", "ade20k", n_train=2, n_val=1, size=(32, 32))
    options = dict(crop_size=24, scale_range=(1.0, 1.3), flip=True)
    plain = SegPairDataset(tmp_path / "data", **options)
    recoloured = SegPairDataset(tmp_path / "data", class_recolour=0.4, class_recolour_prob=1.0, **options)
    changed = 0
    for i in range(4):  # virtual indices: two epochs
        p, r = plain[i], recoloured[i]
        assert torch.equal(p["label"], r["label"]), "recolouring changed the geometric draws"
        changed += int(not torch.equal(p["image"], r["image"]))
    assert changed == 4
    with pytest.raises(ValueError, match="class_recolour"):
        SegPairDataset(tmp_path / "data", class_recolour=-0.1)


def test_the_held_out_dataset_is_never_recoloured():
    from types import SimpleNamespace

    from mmengine.config import Config

    from train_gan.hooks import held_out_dataset

    train = dict(type="SegPairDataset", data_root="d", split="train", class_recolour=0.3)
    runner = SimpleNamespace(cfg=Config(dict(train_dataloader=dict(dataset=train))))
    assert held_out_dataset(runner, None)["class_recolour"] == 0.0


def test_class_recolour_in_a_real_mmseg_pipeline(tmp_path):
    from mmcv.transforms import Compose, LoadImageFromFile
    from mmseg.datasets.transforms import LoadAnnotations

    from dpsims_aug.mm.transforms import ClassRecolour

    write_dataset(tmp_path / "data", "ade20k", n_train=1, n_val=1, size=(64, 64))
    img = next((tmp_path / "data").rglob("images/training/*.jpg"))
    ann = next((tmp_path / "data").rglob("annotations/training/*.png"))
    load = [LoadImageFromFile(), LoadAnnotations()]
    sample = dict(img_path=str(img), seg_map_path=str(ann), reduce_zero_label=False, seg_fields=[])
    plain = Compose(load)(dict(sample))
    np.random.seed(0)  # noqa: NPY002  (the transform draws from numpy's global state, as mmcv's do)
    out = Compose([*load, ClassRecolour(strength=0.5, prob=1.0)])(dict(sample))
    assert np.array_equal(out["gt_seg_map"], plain["gt_seg_map"])
    gains = []
    for cls in np.unique(plain["gt_seg_map"]):
        mask = (plain["gt_seg_map"] == cls) & (plain["img"].min(axis=2) > 30) & (plain["img"].max(axis=2) < 150)
        if mask.sum() < 20:
            continue
        ratio = out["img"][mask].astype(float) / plain["img"][mask]
        assert np.all(np.abs(ratio - np.median(ratio, axis=0)) < 0.05), f"class {cls} was not scaled uniformly"
        gains.append(tuple(np.round(np.median(ratio, axis=0), 2)))
    assert len(gains) >= 2 and len(set(gains)) == len(gains), "classes did not get gains of their own"


def test_the_study_variant_puts_class_recolour_after_the_label_map(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks" / "studies"))
    import bench_seg_gain as study
    from seg_gain.seg import build_runs, build_seg_config
    from seg_gain.variants import Variant

    assert Variant.parse("recolour0.3").recolour == 0.3 and not Variant.parse("recolour0.3").is_pool
    for bad in ("recolour0", "recolourx"):
        with pytest.raises(ValueError, match="recolour"):
            Variant.parse(bad)
    args = study.parse_args(["--labelled", "3", "--seeds", "1", "--work-dir", str(tmp_path), "--threads", "1",
                             "--variants", "recolour0.3"])
    run = next(r for r in build_runs(args, [Variant.parse("real"), Variant.parse("recolour0.3")], tmp_path, {},
                                     None, {}) if r.variant.kind == "recolour")
    cfg = build_seg_config(args, run.spec, tmp_path / "train", tmp_path / "val")
    steps = [s["type"] for s in cfg.train_dataloader.dataset.pipeline]
    assert steps[steps.index("LoadAnnotations") + 1] == "ClassRecolour"
    assert "ClassRecolour" not in [s["type"] for s in cfg.val_dataloader.dataset.pipeline]


def test_a_pool_variant_with_rc_recolours_the_real_and_the_synthetic_samples(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks" / "studies"))
    import bench_seg_gain as study
    from seg_gain.seg import build_runs, build_seg_config
    from seg_gain.variants import Variant

    combined, plain = Variant.parse("pool_n4_s0.25_rc0.3"), Variant.parse("pool_n4_s0.25")
    assert (combined.recolour, combined.share, combined.n, plain.recolour) == (0.3, 0.25, 4, 0.0)
    assert combined.series != plain.series, "the plot would draw both variants as one line"
    for bad in ("pool_n4_rc0", "pool_n4_rcx"):
        with pytest.raises(ValueError, match="rc"):
            Variant.parse(bad)
    args = study.parse_args(["--labelled", "3", "--seeds", "1", "--work-dir", str(tmp_path), "--threads", "1",
                             "--variants", "pool_n4_s0.25_rc0.3"])
    runs = build_runs(args, [Variant.parse("real"), plain, combined], tmp_path, {("pool", 4): tmp_path / "pool"},
                      tmp_path / "gan" / "last.safetensors", {})
    by_name = {r.variant.name: build_seg_config(args, r.spec, tmp_path / "train", tmp_path / "val") for r in runs}
    mix = by_name["pool_n4_s0.25_rc0.3"].train_dataloader.dataset
    for pipeline in (mix.real.pipeline, mix.synthetic.pipeline):
        steps = [s["type"] for s in pipeline]
        assert steps.count("ClassRecolour") == 1 and steps[steps.index("LoadAnnotations") + 1] == "ClassRecolour"
    assert "ClassRecolour" not in [s["type"] for s in by_name["pool_n4_s0.25_rc0.3"].val_dataloader.dataset.pipeline]
    for name in ("real", "pool_n4_s0.25"):
        assert "ClassRecolour" not in str(by_name[name].train_dataloader.dataset), f"{name} was recoloured"


def test_the_shipped_recolour_config_recolours_only_training_images():
    from pathlib import Path

    from mmengine.config import Config

    cfg = Config.fromfile(str(Path(__file__).resolve().parents[1] / "augment" / "embedded"
                              / "fastscnn_embedded_recolour.py"))
    steps = [s["type"] for s in cfg.train_dataloader.dataset.pipeline]
    assert steps[steps.index("LoadAnnotations") + 1] == "ClassRecolour"
    assert cfg.train_dataloader.dataset.data_prefix.img_path == "images/training"
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert "ClassRecolour" not in [s["type"] for s in loader.dataset.pipeline]
