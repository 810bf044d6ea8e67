"""Dataset readers: dataset format detection, label-map keys/stems per format, image/label pairing, HF datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpsims_aug.data.readers import detect_dataset_format, find_label_maps, find_pairs, hf_label_maps
from dpsims_aug.label_maps import write_label_map
from dpsims_aug.labels import LabelMapError


def _label(path: Path, value: int = 1) -> None:
    write_label_map(path, np.full((8, 8), value, np.uint8))


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def make_ade(root: Path) -> Path:
    for split, names in (("training", ["ADE_train_2", "ADE_train_1"]), ("validation", ["ADE_val_1"])):
        for name in names:
            _image(root / "images" / split / f"{name}.jpg")
            _label(root / "annotations" / split / f"{name}.png")
    return root


def make_cityscapes(root: Path) -> Path:
    for split, city in (("train", "aachen"), ("val", "lindau")):
        base = f"{city}_000000_000019"
        _image(root / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png")
        _label(root / "gtFine" / split / city / f"{base}_gtFine_labelIds.png", 7)
        _label(root / "gtFine" / split / city / f"{base}_gtFine_labelTrainIds.png", 0)
        _label(root / "gtFine" / split / city / f"{base}_gtFine_instanceIds.png", 0)
    return root


def make_coco(root: Path) -> Path:
    for split in ("train2017", "val2017"):
        _image(root / "images" / split / "000000000009.jpg")
        _label(root / "annotations" / split / "000000000009.png")
    return root


def make_folder(root: Path, label_dir: str = "labels") -> Path:
    for name in ("b", "a", "sub/c"):
        _image(root / "images" / f"{name}.png")
        _label(root / label_dir / f"{name}.png")
    return root


def test_detect_dataset_format(tmp_path):
    assert detect_dataset_format(make_ade(tmp_path / "ade")) == "ade20k"
    assert detect_dataset_format(make_cityscapes(tmp_path / "city")) == "cityscapes"
    assert detect_dataset_format(make_coco(tmp_path / "coco")) == "coco_stuff"
    assert detect_dataset_format(make_folder(tmp_path / "folder")) == "folder"
    assert detect_dataset_format(make_folder(tmp_path / "folder2", "annotations")) == "folder"
    _label(tmp_path / "bare" / "x.png")
    assert detect_dataset_format(tmp_path / "bare") == "bare"
    with pytest.raises(LabelMapError, match="not a folder"):
        detect_dataset_format(tmp_path / "missing")


def test_ade20k_keys_stems_and_splits(tmp_path):
    root = make_ade(tmp_path)
    refs = find_label_maps(root, split="all")
    assert [r.key for r in refs] == [
        "annotations/training/ADE_train_1.png",
        "annotations/training/ADE_train_2.png",
        "annotations/validation/ADE_val_1.png",
    ]
    assert [r.split for r in refs] == ["train", "train", "val"]
    assert find_label_maps(root) == refs[:2]  # the training split by default
    assert refs[0].stem == "training/ADE_train_1"
    assert refs[0].read().shape == (8, 8)
    assert [r.key for r in find_label_maps(root, split="val")] == ["annotations/validation/ADE_val_1.png"]
    assert len(find_label_maps(root, split="training")) == 2
    with pytest.raises(LabelMapError, match="unknown ade20k split"):
        find_label_maps(root, split="test")


def test_cityscapes_label_ids_and_train_ids(tmp_path):
    root = make_cityscapes(tmp_path)
    refs = find_label_maps(root, split="train")
    assert [r.key for r in refs] == ["gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"]
    assert refs[0].stem == "train/aachen/aachen_000000_000019"
    assert int(refs[0].read()[0, 0]) == 7
    trainids = find_label_maps(root, split="train", train_ids=True)
    assert trainids[0].key.endswith("_gtFine_labelTrainIds.png") and int(trainids[0].read()[0, 0]) == 0
    assert len(find_label_maps(root, split=None)) == 2  # both splits
    pairs = find_pairs(root, split="val")
    assert pairs[0][0].name == "lindau_000000_000019_leftImg8bit.png"


def test_coco_stuff_and_folder_and_bare(tmp_path):
    coco = make_coco(tmp_path / "coco")
    assert [r.key for r in find_label_maps(coco, split="train")] == ["annotations/train2017/000000000009.png"]
    assert find_label_maps(coco, split="val")[0].stem == "val2017/000000000009"
    assert find_pairs(coco, split="train")[0][0] == coco / "images/train2017/000000000009.jpg"

    folder = make_folder(tmp_path / "folder")
    refs = find_label_maps(folder)
    assert [r.key for r in refs] == ["labels/a.png", "labels/b.png", "labels/sub/c.png"]
    assert [r.stem for r in refs] == ["a", "b", "sub/c"]
    assert [p[0].name for p in find_pairs(folder, split=None)] == ["a.png", "b.png", "c.png"]

    bare = tmp_path / "bare"
    _label(bare / "z.png")
    _label(bare / "d" / "y.png")
    refs = find_label_maps(bare)
    assert [(r.key, r.stem) for r in refs] == [("d/y.png", "d/y"), ("z.png", "z")]
    with pytest.raises(LabelMapError, match="without images"):
        find_pairs(bare)


def test_mismatched_pairs_name_offenders_and_count(tmp_path):
    root = make_ade(tmp_path)
    for i in range(7):
        _label(root / "annotations" / "training" / f"extra_{i}.png")
    with pytest.raises(LabelMapError) as err:
        find_pairs(root, split="train")
    msg = str(err.value)
    assert "7 label maps have no image" in msg and "extra_0.png" in msg and "(7 in all)" in msg

    root2 = make_ade(tmp_path / "b")
    _image(root2 / "images" / "training" / "orphan.jpg")
    with pytest.raises(LabelMapError, match=r"1 images have no label map: images/training/orphan.jpg"):
        find_pairs(root2, split="train")


def test_hf_label_maps_from_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    maps = [np.full((8, 8), i, np.uint8) for i in range(3)]
    data = datasets.Dataset.from_dict(
        {"label": [Image.fromarray(m) for m in maps], "name": ["c", "a", "b"]},
        features=datasets.Features({"label": datasets.Image(), "name": datasets.Value("string")}),
    )
    datasets.DatasetDict({"train": data}).save_to_disk(str(tmp_path / "dd"))
    refs = hf_label_maps(tmp_path / "dd", split="train")
    assert [r.key for r in refs] == ["train/00000000", "train/00000001", "train/00000002"]
    assert [int(r.read()[0, 0]) for r in refs] == [0, 1, 2]
    by_id = hf_label_maps(tmp_path / "dd", split="train", id_column="name")
    assert [(r.key, int(r.read()[0, 0])) for r in by_id] == [("train/a", 1), ("train/b", 2), ("train/c", 0)]
    with pytest.raises(LabelMapError, match="no split 'val'"):
        hf_label_maps(tmp_path / "dd", split="val")
    with pytest.raises(LabelMapError, match="no column 'seg'"):
        hf_label_maps(tmp_path / "dd", label_column="seg")

    features = datasets.Features({"label": datasets.Image()})
    rgb = datasets.Dataset.from_dict({"label": [Image.fromarray(np.zeros((8, 8, 3), np.uint8))]}, features=features)
    rgb.save_to_disk(str(tmp_path / "rgb"))
    with pytest.raises(LabelMapError, match="RGB colour image"):
        hf_label_maps(tmp_path / "rgb")[0].read()


# ------------------------------------------------------------------------------------------ splits are sacred


def test_annotations_folder_named_directly_reads_only_the_asked_split(tmp_path):
    root = make_ade(tmp_path)
    refs = find_label_maps(root / "annotations")  # `generate --labels ade/annotations`
    assert [r.key for r in refs] == ["training/ADE_train_1.png", "training/ADE_train_2.png"]
    assert {r.split for r in refs} == {"train"}
    assert [r.key for r in find_label_maps(root / "annotations", split="val")] == ["validation/ADE_val_1.png"]
    assert len(find_label_maps(root / "annotations", split="all")) == 3


def test_a_split_folder_named_directly_is_that_split(tmp_path):
    root = make_ade(tmp_path)
    assert len(find_label_maps(root / "annotations" / "training")) == 2
    with pytest.raises(LabelMapError, match=r"validation: holds label maps of the split\(s\) val"):
        find_label_maps(root / "annotations" / "validation")  # the default split is train
    refs = find_label_maps(root / "annotations" / "validation", split="val")
    assert [r.split for r in refs] == ["val"]


def test_cityscapes_gtfine_named_directly(tmp_path):
    root = make_cityscapes(tmp_path)
    refs = find_label_maps(root / "gtFine")
    assert [r.key for r in refs] == ["train/aachen/aachen_000000_000019_gtFine_labelIds.png"]
    refs = find_label_maps(root / "gtFine", split="val", train_ids=True)
    assert [r.key for r in refs] == ["val/lindau/lindau_000000_000019_gtFine_labelTrainIds.png"]


def test_folder_format_honours_split_lists(tmp_path):
    root = tmp_path / "folder"
    for name in ("train_000000", "train_000001", "val_000000"):
        _image(root / "images" / f"{name}.png")
        _label(root / "labels" / f"{name}.png")
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("train_000000\ntrain_000001\n")
    (root / "splits" / "val.txt").write_text("val_000000\n")
    assert [r.stem for r in find_label_maps(root)] == ["train_000000", "train_000001"]
    assert [r.stem for r in find_label_maps(root, split="val")] == ["val_000000"]
    # the other split's images are not orphans
    assert [p[0].name for p in find_pairs(root, split="val")] == ["val_000000.png"]
    assert len(find_pairs(root, split="train")) == 2
    with pytest.raises(LabelMapError, match="no list of split 'test'"):
        find_label_maps(root, split="test")


def test_folder_format_with_split_subfolders(tmp_path):
    root = tmp_path / "folder"
    for split, name in (("train", "a"), ("val", "b")):
        _image(root / "images" / split / f"{name}.png")
        _label(root / "labels" / split / f"{name}.png")
    assert [r.key for r in find_label_maps(root)] == ["labels/train/a.png"]
    assert [p[0].name for p in find_pairs(root, split="val")] == ["b.png"]


def test_a_derived_folder_keeps_its_recorded_split(tmp_path):
    from dpsims_aug.data.splits import record_splits

    folder = tmp_path / "lay"
    _label(folder / "x_l0.png")
    record_splits(folder, ["val"], source="somewhere")
    with pytest.raises(LabelMapError, match="source_split.json"):
        find_label_maps(folder)
    assert [r.split for r in find_label_maps(folder, split="val")] == ["val"]


def test_unknown_split_name_is_refused(tmp_path):
    _label(tmp_path / "bare" / "z.png")
    with pytest.raises(LabelMapError, match="not a split name"):
        find_label_maps(tmp_path / "bare", split="holdout")
