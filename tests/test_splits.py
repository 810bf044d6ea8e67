"""Splits are sacred: for every path that reads label maps, a validation map must never reach training.

One dataset with a training and a validation split (ADE-20K format, and the plain folder format with split lists);
each test feeds it to one path the way a user would and fails if a validation map (or anything made from one) ends up
where training reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dpsims_aug.cli import main
from dpsims_aug.data.splits import SPLIT_RECORD, SplitLeakError, recorded_splits
from dpsims_aug.data.writers import write_dataset
from dpsims_aug.labels import LabelMapError
from dpsims_aug.layouts import write_layouts
from dpsims_aug.pool.format import read_manifest_records
from dpsims_aug.pool.writer import GenerateError, generate


@pytest.fixture(scope="module")
def ade(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ade") / "data"
    write_dataset(root, "ade20k", n_train=3, n_val=2, size=(32, 32))
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder") / "data"
    write_dataset(root, "folder", n_train=3, n_val=2, size=(32, 32))  # one images/ + labels/, splits/*.txt
    return root


@pytest.fixture(scope="module")
def train_pool(ade, ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pools") / "train_pool"
    generate(labels=ade / "annotations", n=1, out=out, checkpoint=ckpt, progress=False, workers=1)
    return out


@pytest.fixture(scope="module")
def val_pool(ade, ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pools") / "val_pool"
    generate(labels=ade, n=1, out=out, checkpoint=ckpt, split="val", progress=False, workers=1)
    return out


def _sources(pool: Path) -> set[str]:
    return {key for key, _ in read_manifest_records(pool)}


def test_generate_on_the_annotations_folder_renders_only_training_maps(train_pool):
    """`dpsims-aug generate --labels ade/annotations`: the headline command."""
    assert _sources(train_pool) == {f"training/scene_{i:06d}.png" for i in range(3)}
    assert not (train_pool / "images" / "validation").exists()
    assert recorded_splits(train_pool) == ["train"]
    config = (train_pool / "dataset_config.py").read_text()
    assert "dpsims_train_dataset = dict(" in config


def test_generate_cli_defaults_to_the_training_split(ade, ckpt, tmp_path, capsys):
    out = tmp_path / "pool"
    assert main(["generate", "--labels", str(ade), "--n", "1", "--out", str(out), "--checkpoint", str(ckpt),
                 "--no-progress"]) == 0
    assert "3 label maps (split: train)" in capsys.readouterr().out
    assert all(key.startswith("annotations/training/") for key in _sources(out))


def test_a_validation_pool_is_recorded_and_has_no_training_dataset(val_pool):
    assert _sources(val_pool) == {f"annotations/validation/scene_{i:06d}.png" for i in range(2)}
    assert recorded_splits(val_pool) == ["val"]
    config = (val_pool / "dataset_config.py").read_text()
    assert "dpsims_train_dataset" not in config and "dpsims_eval_dataset = dict(" in config


def test_generate_refuses_to_add_validation_maps_to_a_training_pool(ade, ckpt, train_pool, tmp_path):
    with pytest.raises(GenerateError, match="split"):
        generate(labels=ade, n=1, out=train_pool, checkpoint=ckpt, split="all", progress=False, workers=1)
    assert recorded_splits(train_pool) == ["train"]


def test_generate_refuses_a_validation_folder_named_directly(ade, ckpt, tmp_path):
    with pytest.raises(LabelMapError, match="split"):
        generate(labels=ade / "annotations" / "validation", n=1, out=tmp_path / "p", checkpoint=ckpt,
                 progress=False)
    assert not (tmp_path / "p").exists()


def test_generate_honours_the_split_lists_of_the_folder_format(folder, ckpt, tmp_path):
    out = tmp_path / "pool"
    generate(labels=folder, n=1, out=out, checkpoint=ckpt, progress=False, workers=1)
    assert _sources(out) == {f"labels/train_{i:06d}.png" for i in range(3)}


def test_layouts_read_the_training_split_and_carry_it(ade, ckpt, tmp_path):
    maps = tmp_path / "maps"
    write_layouts(ade / "annotations", 2, maps, progress=False, log=lambda _m: None)
    made = sorted(p.relative_to(maps).as_posix() for p in maps.rglob("*.png"))
    assert made and all(m.startswith("training/") for m in made)  # sources and donors: training maps only
    assert recorded_splits(maps) == ["train"]
    # Layouts of the validation split keep their split: generate refuses them for a training pool.
    val_maps = tmp_path / "val_maps"
    write_layouts(ade, 1, val_maps, split="val", progress=False, log=lambda _m: None)
    (val_maps / "training").mkdir()  # even a misleading sub-folder name cannot launder them
    with pytest.raises(LabelMapError, match="split"):
        generate(labels=val_maps / "validation", n=1, out=tmp_path / "p", checkpoint=ckpt, dataset_format="bare",
                 progress=False)
    flat = tmp_path / "flat"
    write_layouts(ade / "annotations" / "validation", 1, flat, split="val", progress=False, log=lambda _m: None)
    with pytest.raises(LabelMapError, match=SPLIT_RECORD):
        generate(labels=flat, n=1, out=tmp_path / "p", checkpoint=ckpt, dataset_format="bare", progress=False)
    with pytest.raises(LabelMapError, match="split"):  # nor can a re-run add training layouts to it
        write_layouts(ade, 1, flat, progress=False, log=lambda _m: None)


def test_transform_refuses_a_validation_pool(train_pool, val_pool):
    pytest.importorskip("mmcv")
    from dpsims_aug.mm.transforms import DPSIMSPoolAugment

    DPSIMSPoolAugment(pool=str(train_pool))
    with pytest.raises(SplitLeakError, match="val"):
        DPSIMSPoolAugment(pool=str(val_pool))


def test_synthetic_mix_dataset_refuses_a_validation_pool(ade, val_pool):
    pytest.importorskip("mmseg")
    from mmengine.config import Config

    from dpsims_aug.mm.datasets import SyntheticMixDataset

    synthetic = Config.fromfile(str(val_pool / "dataset_config.py"))["dpsims_eval_dataset"]
    real = dict(type="BaseSegDataset", data_root=str(ade), data_prefix=dict(img_path="images/training",
                seg_map_path="annotations/training"), img_suffix=".jpg", seg_map_suffix=".png",
                reduce_zero_label=True, metainfo=synthetic["metainfo"], pipeline=[])
    with pytest.raises(SplitLeakError, match="SyntheticMixDataset"):
        SyntheticMixDataset(real=real, synthetic=dict(synthetic), synthetic_share=0.5)


def test_filter_refuses_a_validation_pool_and_validation_statistics(ade, train_pool, val_pool, tmp_path):
    from dpsims_aug.pool.filter import filter_pool

    missing = tmp_path / "none.pth"  # refused before the segmenter is needed
    with pytest.raises(SplitLeakError, match="val"):
        filter_pool(val_pool, ade, "seg.py", missing, tmp_path / "f1", progress=False)
    with pytest.raises(SplitLeakError, match="training split"):
        filter_pool(train_pool, ade, "seg.py", missing, tmp_path / "f2", split="val", progress=False)


def test_tstr_refuses_to_test_on_the_training_split(ade, tmp_path):
    from dpsims_aug.metrics.tstr import tstr_real_reference

    with pytest.raises(SplitLeakError, match="must not be the training split"):
        tstr_real_reference(ade, "seg.py", tmp_path, train_split="train", val_split="training")


def test_trainer_dataset_and_held_out_split_of_the_folder_format(folder):
    from train_gan.data import SegPairDataset
    from train_gan.hooks import held_out_dataset

    train = SegPairDataset(folder, crop_size=32, split="train")
    assert [label.name for _, label in train.pairs] == [f"train_{i:06d}.png" for i in range(3)]

    class _Runner:  # what held_out_dataset reads of the runner
        class cfg:  # noqa: N801
            train_dataloader = dict(dataset=dict(type="SegPairDataset", data_root=str(folder), crop_size=32,
                                                 split="train"))

    _Runner.cfg.train_dataloader = type("D", (), {"dataset": _Runner.cfg.train_dataloader["dataset"]})
    held = held_out_dataset(_Runner, None)
    held.pop("type")
    held_out = SegPairDataset(**held)
    assert [label.name for _, label in held_out.pairs] == [f"val_{i:06d}.png" for i in range(2)]


def test_evaluate_reads_only_the_asked_split_of_the_folder_format(folder, ckpt, tmp_path):
    from dpsims_aug.metrics.evaluate import evaluate

    result = evaluate(checkpoint=ckpt, data=folder, split="val", n_seeds=1, cache_dir=tmp_path / "cache",
                      progress=False)
    assert result["info"]["label_maps"] == 2  # the two validation maps, not all five


def test_the_study_synthesizes_only_its_training_maps(ckpt, tmp_path, monkeypatch):
    """bench_seg_gain's data root holds the held-out validation scenes next to the labelled ones."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))  # common.py
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks" / "studies"))
    import bench_seg_gain as study
    from seg_gain import stages

    args = study.parse_args(["--labelled", "3", "--val", "2", "--size", "32", "--threads", "1", "--jobs", "1",
                             "--work-dir", str(tmp_path / "wd")])
    train_root, val_root, _ = stages.stage_data(args, tmp_path / "wd" / "root")
    assert (val_root / "annotations" / "validation").is_dir()
    pool, _ = stages.stage_pool(args, tmp_path / "gan", train_root, ckpt, 1)
    assert _sources(pool) == {f"annotations/training/scene_{i:06d}.png" for i in range(3)}
    layouts_pool, _ = stages.stage_layouts(args, tmp_path / "gan", train_root, ckpt, 1)
    assert {key.split("/")[0] for key in _sources(layouts_pool)} == {"training"}
    assert recorded_splits(layouts_pool) == ["train"]
