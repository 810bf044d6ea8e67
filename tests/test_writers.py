"""The embedded dataset on disk: mmseg, Hugging Face datasets and our own reader load exactly our labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dpsims_aug.data.mmseg_configs import mmseg_dataset_config
from dpsims_aug.data.scenes import render_scene, scene_seeds
from dpsims_aug.data.writers import WRITABLE_FORMATS, write_dataset
from dpsims_aug.label_maps import read_label_map
from dpsims_aug.labels import LabelSpace, embedded_label_space

SIZE = (64, 64)
N_TRAIN, N_VAL = 8, 3
SPACE = embedded_label_space()


def _expected(split: str, i: int) -> tuple[np.ndarray, np.ndarray]:
    return render_scene(*scene_seeds(0, i, {"train": 0, "val": 1}[split]), size=SIZE)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("embedded")
    return {fmt: write_dataset(base / fmt, fmt, N_TRAIN, N_VAL, SIZE, seed=0) for fmt in WRITABLE_FORMATS}


def _mmseg_dataset(cfg: dict):
    """Build with mmseg's registry; LoadAnnotations takes reduce_zero_label from the dataset (its own
    argument is deprecated)."""
    pytest.importorskip("mmseg")
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    register_all_modules()
    cfg = dict(cfg, pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")])
    return DATASETS.build(cfg)


def _check_mmseg(dataset, split: str, n: int) -> None:
    assert len(dataset) == n
    assert tuple(dataset.metainfo["classes"]) == SPACE.class_names
    assert [tuple(c) for c in dataset.metainfo["palette"]] == list(SPACE.palette)
    for i in range(n):
        sample = dataset[i]
        _, labels = _expected(split, i)
        np.testing.assert_array_equal(sample["gt_seg_map"], labels)
        assert sample["img"].shape == (*SIZE, 3)
    assert set(np.unique(dataset[0]["gt_seg_map"]).tolist()) <= set(range(10)) | {255}


def test_summary_and_label_space(written):
    for fmt, summary in written.items():
        assert summary["dataset_format"] == fmt
        assert summary["splits"] == {"train": N_TRAIN, "val": N_VAL}
        assert summary["written"] == N_TRAIN + N_VAL and summary["skipped"] == 0
        assert LabelSpace.load(summary["labels_json"]) == SPACE
        manifest = json.loads(Path(summary["root"], "dataset.json").read_text())
        assert manifest["complete"] is True
        assert manifest["domain"] == summary["domain"] == "source"  # the default domain is recorded


def test_mmseg_reads_the_ade20k_format(written):
    root = written["ade20k"]["root"]
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        cfg = mmseg_dataset_config(root, "ade20k", split)
        folder = {"train": "training", "val": "validation"}[split]
        assert cfg["data_prefix"]["img_path"] == f"images/{folder}"
        _check_mmseg(_mmseg_dataset(cfg), split, n)


def test_ade20k_dataset_class_refuses_our_class_names(written):
    """Why we use BaseSegDataset: ADE20KDataset maps our names onto ITS class list ('cloud' is not there)."""
    pytest.importorskip("mmseg")
    cfg = dict(mmseg_dataset_config(written["ade20k"]["root"], "ade20k"), type="ADE20KDataset")
    cfg.pop("img_suffix"), cfg.pop("seg_map_suffix")
    with pytest.raises(ValueError, match="not a subset"):
        _mmseg_dataset(cfg)


def test_mmseg_reads_the_cityscapes_format(written):
    root = written["cityscapes"]["root"]
    _check_mmseg(_mmseg_dataset(mmseg_dataset_config(root, "cityscapes", "val")), "val", N_VAL)
    # labelIds hold raw ids (0 = unlabeled), labelTrainIds contiguous ids (255 = unlabeled).
    gt = f"{root}/gtFine/train/scene/scene_000002_000019_gtFine_"
    _, labels = _expected("train", 2)
    np.testing.assert_array_equal(read_label_map(gt + "labelIds.png"), SPACE.to_raw(labels))
    np.testing.assert_array_equal(read_label_map(gt + "labelTrainIds.png"), labels)


def test_mmseg_reads_the_folder_format_through_split_files(written):
    cfg = mmseg_dataset_config(written["folder"]["root"], "folder", "train")
    _check_mmseg(_mmseg_dataset(cfg), "train", N_TRAIN)


def test_folder_format_round_trip(written):
    from PIL import Image

    root = written["folder"]["root"]
    names = open(f"{root}/splits/val.txt").read().split()
    assert names == [f"val_{i:06d}" for i in range(N_VAL)]
    for i, name in enumerate(names):
        image, labels = _expected("val", i)
        raw = read_label_map(f"{root}/labels/{name}.png")
        np.testing.assert_array_equal(SPACE.to_contiguous(raw), labels)
        # PNG images are lossless: the exact rendered pixels come back.
        np.testing.assert_array_equal(np.asarray(Image.open(f"{root}/images/{name}.png")), image)


def test_hf_format_loads_with_datasets(written):
    datasets = pytest.importorskip("datasets")
    dd = datasets.load_from_disk(written["hf"]["root"])
    assert set(dd) == {"train", "validation"}
    assert dd["train"].num_rows == N_TRAIN and dd["validation"].num_rows == N_VAL
    for i in (0, N_VAL - 1):
        row = dd["validation"][i]
        image, labels = _expected("val", i)
        np.testing.assert_array_equal(SPACE.to_contiguous(np.asarray(row["label"])), labels)
        assert np.asarray(row["image"]).shape == image.shape
        assert (row["layout_seed"], row["appearance_seed"]) == scene_seeds(0, i, 1)


def test_rerun_is_idempotent_and_refuses_other_parameters(tmp_path):
    out = tmp_path / "ade"
    write_dataset(out, "ade20k", 3, 1, SIZE)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = write_dataset(out, "ade20k", 4, 1, SIZE)  # grows train by one, rewrites nothing else
    assert again["written"] == 1 and again["skipped"] == 4
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    shrunk = write_dataset(out, "ade20k", 2, 1, SIZE)  # drops the scenes beyond the new count
    assert shrunk["written"] == 0
    assert sorted(p.name for p in (out / "annotations/training").iterdir()) == ["scene_000000.png",
                                                                                 "scene_000001.png"]
    with pytest.raises(FileExistsError, match="seed"):
        write_dataset(out, "ade20k", 2, 1, SIZE, seed=1)
    redone = write_dataset(out, "ade20k", 2, 1, SIZE, seed=1, overwrite=True)
    assert redone["written"] == 3
    assert not [p for p in out.rglob(".*")], "temporary files left behind"


def test_a_manifest_with_the_old_layout_key_is_reused(tmp_path):
    out = tmp_path / "old"
    write_dataset(out, "folder", 2, 1, SIZE)
    manifest = json.loads((out / "dataset.json").read_text())
    manifest["layout"] = manifest.pop("dataset_format")  # as written before `layout` became `dataset_format`
    (out / "dataset.json").write_text(json.dumps(manifest))
    assert write_dataset(out, "folder", 2, 1, SIZE)["skipped"] == 3
    assert json.loads((out / "dataset.json").read_text())["dataset_format"] == "folder"
    (out / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(FileExistsError, match="dataset_format='folder'"):
        write_dataset(out, "ade20k", 2, 1, SIZE)


def test_hf_rerun_skips_a_complete_dataset(tmp_path):
    pytest.importorskip("datasets")
    first = write_dataset(tmp_path / "hf", "hf", 2, 1, SIZE)
    second = write_dataset(tmp_path / "hf", "hf", 2, 1, SIZE)
    assert first["written"] == 3 and second["written"] == 0


def test_unknown_dataset_format_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="ade20k, cityscapes, folder, hf"):
        write_dataset(tmp_path, "coco", 1, 0)
    with pytest.raises(ValueError):
        write_dataset(tmp_path / "x", "folder", -1, 0)
