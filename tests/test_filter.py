"""dpsims-aug filter: FreeMask pixel filtering and hardness-aware resampling of a generated pool, with a real
mmseg segmenter trained by a real mmengine Runner."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("mmseg")

from conftest import tiny_generator_checkpoint  # noqa: E402

from dpsims_aug.cli import main as cli_main  # noqa: E402
from dpsims_aug.data.writers import write_dataset  # noqa: E402
from dpsims_aug.label_maps import read_label_map
from dpsims_aug.labels import embedded_label_space
from dpsims_aug.pool.filter import (  # noqa: E402
    FilterError,
    filter_mask,
    filter_pool,
    hardness_counts,
    map_hardness,
)
from dpsims_aug.pool.writer import generate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPACE = embedded_label_space()


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> SimpleNamespace:
    """8 real 64x64 images, a Fast-SCNN trained on them for 150 iterations (mmengine Runner, the shipped embedded
    config), and a pool of 2 images per map in which image 0 is the real image and image 1 uniform noise."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    root = tmp_path_factory.mktemp("filter")
    data = root / "data"
    write_dataset(data, "ade20k", n_train=8, n_val=2, size=(64, 64))
    cfg = Config.fromfile(str(REPO / "augment" / "embedded" / "fastscnn_embedded_real.py"))
    cfg.work_dir = str(root / "seg")
    cfg.train_dataloader.dataset.data_root = str(data)  # the shipped pipeline: the test pipeline's scale
    cfg.train_dataloader.update(batch_size=4, num_workers=0, persistent_workers=False)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=150, val_interval=1000)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=150, by_epoch=False)
    cfg.default_hooks.pop("visualization", None)
    cfg.param_scheduler = []
    cfg.randomness = dict(seed=0)
    Runner.from_cfg(cfg).train()
    seg_config = root / "seg" / "config.py"
    cfg.dump(str(seg_config))

    ckpt = tiny_generator_checkpoint(root / "g.safetensors")
    pool = root / "pool"
    generate(labels=data, n=2, out=pool, checkpoint=ckpt, split="train", batch_size=4, progress=False, workers=1)
    from PIL import Image

    rng = np.random.default_rng(0)
    for real in sorted((data / "images" / "training").glob("*.jpg")):  # image 0 := the real image, 1 := noise
        shutil.copyfile(real, pool / "images" / "training" / f"{real.stem}_s0.jpg")
        noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(pool / "images" / "training" / f"{real.stem}_s1.jpg", quality=95)
    return SimpleNamespace(root=root, data=data, pool=pool, seg_config=seg_config,
                           seg_checkpoint=root / "seg" / "iter_150.pth")


def _run(setup, out: Path, **kwargs):
    return filter_pool(setup.pool, setup.data, setup.seg_config, setup.seg_checkpoint, out, dataset_format="ade20k",
                       progress=False, log=lambda m: None, **kwargs)


def test_filter_mask_drops_pixels_above_the_class_margin():
    labels = np.array([[0, 0, 1, 255], [2, 2, 1, 0]], np.uint8)
    loss = np.array([[0.5, 2.0, 0.1, 9.0], [5.0, 5.0, 0.3, 1.1]])
    class_loss = np.array([1.0, 0.2, np.nan])  # class 2 absent from the real set: no evidence, kept
    drop = filter_mask(loss, labels, class_loss, margin=1.0, ignore_index=255)
    assert drop.tolist() == [[False, True, False, False], [False, False, True, True]]


def test_hardness_ranks_maps_from_one_to_n():
    class_loss = np.array([0.1, 1.0, np.nan])
    easy, hard = np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8)
    assert map_hardness(easy, class_loss, 255) == pytest.approx(0.1)
    assert map_hardness(np.full((4, 4), 2, np.uint8), class_loss, 255) == 0.0  # only unknown classes
    hardness = {"a": 0.5, "b": 0.1, "c": 0.9, "d": 0.3, "e": map_hardness(hard, class_loss, 255)}
    counts = hardness_counts(hardness, 4)
    assert counts["b"] == 1 and counts["e"] == 4
    ranked = sorted(hardness, key=hardness.get)
    assert [counts[k] for k in ranked] == sorted(counts[k] for k in ranked)  # harder never gets fewer
    assert hardness_counts(dict(reversed(list(hardness.items()))), 4) == counts


def test_filter_keeps_real_looking_pixels_drops_implausible_ones_and_leaves_the_pool_alone(setup, tmp_path):
    before = _tree_digest(setup.pool)
    summary = _run(setup, tmp_path / "f")
    assert _tree_digest(setup.pool) == before
    assert summary.images_selected == summary.images_pool == 16 and summary.filtered_now == 16
    lines = [json.loads(x) for x in (tmp_path / "f" / "filter.jsonl").read_text().splitlines()]
    kept = {k: np.mean([1 - r["dropped"] / r["labelled"] for r in lines if r["k"] == k]) for k in (0, 1)}
    # The segmenter was trained on the real images: image 0 (the real one) keeps far more of its pixels than
    # image 1 (noise).
    assert kept[0] > 0.6 and kept[0] > kept[1] + 0.3, kept
    for rec in lines:
        source = read_label_map(setup.pool / rec["annotation"])
        filtered = read_label_map(tmp_path / "f" / rec["annotation"])
        changed = filtered != source
        assert set(np.unique(filtered[changed]).tolist()) <= {0}  # dropped pixels became raw 0 (unlabeled)
        assert int(changed.sum()) == rec["dropped"]
    assert len((tmp_path / "f" / "samples.txt").read_text().split()) == 16


def test_filtered_pool_trains_in_a_mix_with_real_data(setup, tmp_path):
    """The written dataset_config.py: mmseg reads the pool's images with the filtered annotations (dropped pixels
    are 255 after reduce_zero_label), and a Runner trains on SyntheticMixDataset(real, filtered pool)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    from mmseg.registry import DATASETS

    summary = _run(setup, tmp_path / "f", resample=True)
    filtered = Config.fromfile(str(tmp_path / "f" / "dataset_config.py")).dpsims_filtered_train_dataset
    filtered.pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")]
    with DefaultScope.overwrite_default_scope("mmseg"):
        dataset = DATASETS.build(filtered)
        sample = dataset[0]
    assert len(dataset) == sum(summary.images_per_map.values())
    assert Path(sample["img_path"]).is_relative_to(setup.pool)
    assert 255 in sample["gt_seg_map"] or json.loads((tmp_path / "f" / "filter.json").read_text())["kept_fraction"]

    cfg = Config.fromfile(str(setup.seg_config))
    cfg.work_dir = str(tmp_path / "run")
    real = cfg.train_dataloader.dataset
    filtered.pipeline = real.pipeline
    cfg.train_dataloader.dataset = dict(type="SyntheticMixDataset", real=real, synthetic=filtered,
                                        synthetic_share=0.25)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=1000)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1000, by_epoch=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2 and runner.train_dataloader.dataset.synthetic_share == 0.25


def test_resampling_gives_harder_maps_more_images(setup, tmp_path):
    summary = _run(setup, tmp_path / "r", margin=None, resample=True)
    counts = summary.images_per_map
    assert min(counts.values()) == 1 and max(counts.values()) == 2 and len(counts) == 8
    assert summary.images_selected == sum(counts.values()) and summary.kept_fraction == 1.0  # no pixel filter
    losses = json.loads((tmp_path / "r" / "class_losses.json").read_text())["class_loss"]
    class_loss = np.array([np.nan if v is None else v for v in losses])
    hardness = {key: map_hardness(SPACE.to_contiguous(read_label_map(setup.data / key)), class_loss, 255)
                for key in counts}
    assert max(hardness[k] for k in counts if counts[k] == 1) <= min(hardness[k] for k in counts if counts[k] == 2)


def test_a_killed_run_resumes_to_the_same_files(setup, tmp_path):
    _run(setup, tmp_path / "full")
    out = tmp_path / "resumed"
    _run(setup, out)
    manifest = out / "filter.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:10]) + "\n" + lines[10][:20])  # killed while appending line 11
    (out / json.loads(lines[12])["annotation"]).unlink()
    summary = _run(setup, out)
    assert summary.filtered_now == 6  # lines 11..16 (the torn one and those after it)
    for rec in map(json.loads, lines):
        assert (out / rec["annotation"]).read_bytes() == (tmp_path / "full" / rec["annotation"]).read_bytes()
    params = json.loads((out / "params.json").read_text())
    params["layout"] = params.pop("dataset_format")  # as written before the rename: still the same parameters
    (out / "params.json").write_text(json.dumps(params))
    assert _run(setup, out).filtered_now == 0
    with pytest.raises(FilterError, match="made with other parameters.*margin"):
        _run(setup, out, margin=2.0)


def test_bad_inputs_are_named(setup, tmp_path):
    with pytest.raises(FilterError, match="no manifest.jsonl"):
        filter_pool(setup.data, setup.data, setup.seg_config, setup.seg_checkpoint, tmp_path / "x")
    with pytest.raises(FilterError, match="checkpoint not found"):
        filter_pool(setup.pool, setup.data, setup.seg_config, tmp_path / "missing.pth", tmp_path / "x")
    with pytest.raises(FilterError, match="must not be the pool itself"):
        filter_pool(setup.pool, setup.data, setup.seg_config, setup.seg_checkpoint, setup.pool)
    evil = tmp_path / "evil_pool"
    shutil.copytree(setup.pool, evil)
    rec = json.loads((evil / "manifest.jsonl").read_text().splitlines()[0])
    rec["annotation"] = "../../outside.png"
    (evil / "manifest.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(FilterError, match="not a relative path inside"):
        filter_pool(evil, setup.data, setup.seg_config, setup.seg_checkpoint, tmp_path / "e", dataset_format="ade20k",
                    progress=False, log=lambda m: None)
    assert not (tmp_path / "outside.png").exists()


def test_cli_filter(setup, tmp_path, capsys):
    rc = cli_main(["filter", "--pool", str(setup.pool), "--real", str(setup.data), "--dataset-format", "ade20k",
                   "--seg-config", str(setup.seg_config), "--seg-checkpoint", str(setup.seg_checkpoint),
                   "--out", str(tmp_path / "c"), "--resample", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "pool images selected" in out and "dataset_config.py" in out
    rc = cli_main(["filter", "--pool", str(tmp_path), "--real", str(setup.data), "--seg-config",
                   str(setup.seg_config), "--seg-checkpoint", str(setup.seg_checkpoint)])
    assert rc == 2 and "no manifest.jsonl" in capsys.readouterr().err
