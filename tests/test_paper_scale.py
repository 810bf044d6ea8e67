"""Issue 28 (1, 5): the paper configs' whole path, at reduced width, on data in the paper datasets' real on-disk
formats: the same pipeline as ``benchmarks/speed/paper_dry_run.py`` at true size (its ``--reduced`` mode, in this
process: the real ``dpsims-aug`` commands and mmengine Runners), with the configs' class counts (150 / 182 / 35;
mmseg's 150 / 171 / 19) and instance-edge settings, but the tiny generator preset, a random-init EfficientNet-Lite0
discriminator and 64..128 px images. It catches shape and label-space errors of the paper path: GAN training from the
ADE-20K, COCO-Stuff and Cityscapes formats, checkpoint, resume, sample grid, evaluation, export, ``generate``, every
mmseg dataset of ``augment/<dataset>/`` and one ``seg-train`` iteration of the SegFormer-B0 pool, online and batch
configs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from dpsims_aug.data.paper_formats import PAPER_DATASETS, raw_class_ids, write_paper_dataset
from dpsims_aug.data.readers import find_label_maps, find_pairs
from dpsims_aug.label_maps import read_label_map
from dpsims_aug.labels import get_label_space

pytest.importorskip("mmseg")

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("paper_dry_run", REPO / "benchmarks" / "speed" / "paper_dry_run.py")
paper_dry_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paper_dry_run)

CLASSES = {"ade20k": (150, 150), "coco_stuff": (182, 171), "cityscapes": (35, 19)}  # (GAN, mmseg)


def _config_instance_edges(dataset: str) -> bool:
    from mmengine.config import Config

    from dpsims_aug.models import GENERATOR_PRESETS

    generator = dict(Config.fromfile(str(REPO / "train_gan" / "configs" / f"{dataset}.py")).model.generator)
    return bool(generator.get("use_instance_edges", GENERATOR_PRESETS[generator["preset"]].get("use_instance_edges")))


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_paper_formats_are_the_datasets_own(dataset, tmp_path):
    """Every class of the label space occurs in each split; ids, names and label files as the publishers (and mmseg's
    converters) write them; sizes as given."""
    root = tmp_path / dataset
    summary = write_paper_dataset(root, dataset, sizes=((64, 96), (96, 64)))
    for split in ("train", "val"):
        assert summary["splits"][split]["classes_missing"] == []
    refs = find_label_maps(root, split="train", train_ids=False)
    raw = np.concatenate([read_label_map(r.path).ravel() for r in refs
                          if not r.path.name.endswith("_labelTrainIds.png")])
    assert set(raw_class_ids(dataset)) <= set(np.unique(raw).tolist())
    if dataset == "ade20k":
        assert sorted(p.name for p in (root / "images" / "training").iterdir()) == [
            "ADE_train_00000001.jpg", "ADE_train_00000002.jpg"]
        assert set(np.unique(raw).tolist()) == set(range(151))  # 0 = unlabeled
    elif dataset == "coco_stuff":
        train_ids = read_label_map(root / "annotations" / "train2017" / "000000000009_labelTrainIds.png")
        stuff = read_label_map(root / "annotations" / "train2017" / "000000000009.png")
        np.testing.assert_array_equal(train_ids, get_label_space("coco_stuff171").to_contiguous(stuff))
        assert 255 in np.unique(raw) and not {11, 25, 28} & set(np.unique(raw).tolist())  # never-annotated ids
        assert (root / "annotations" / "panoptic_train2017" / "000000000009.png").is_file()
    else:
        names = sorted(p.name for p in (root / "gtFine" / "train").rglob("*"))
        assert "aachen_000000_000019_gtFine_instanceIds.png" in names
        assert "aachen_000000_000019_gtFine_polygons.json" in names
        from PIL import Image

        with Image.open(root / "gtFine/train/aachen/aachen_000000_000019_gtFine_instanceIds.png") as img:
            assert img.mode.startswith("I")  # 16-bit, as Cityscapes ships them
            ids = np.asarray(img)
        assert (ids >= 24000).any()  # thing instances: labelId * 1000 + k
        assert len(find_pairs(root, split="val")) == 2


def test_the_gan_reads_coco_stuff_as_mmseg_prepares_it(tmp_path):
    """mmseg's converter writes <id>_labelTrainIds.png beside each stuffthingmap: the GAN reads the raw maps only
    (a finding of benchmarks/speed/paper_dry_run.py)."""
    root = tmp_path / "coco_stuff164k"
    write_paper_dataset(root, "coco_stuff", sizes=((64, 64),))
    pairs = find_pairs(root, split="train")
    assert [label.name for _, label in pairs] == ["000000000009.png", "000000001009.png"]


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_paper_pipeline_at_reduced_width(dataset, tmp_path):
    edges = _config_instance_edges(dataset)  # what the shipped config says (ADE-20K: no instance maps)
    out = tmp_path / "result.json"
    paper_dry_run.main(["--reduced", "--datasets", dataset, "--work-dir", str(tmp_path / "work"), "--out", str(out),
                        "--timed-steps", "0"])
    record = json.loads(out.read_text())["datasets"][dataset]
    stages = record["stages"]
    tails = {k: v.get("log_tail", v.get("problem", v.get("skipped"))) for k, v in stages.items() if not v.get("ok")}
    if "readers_gan_view" in stages:  # the known COCO-Stuff reader finding: only the GAN's reading failed
        readers = stages["readers"]
        assert dataset == "coco_stuff" and record["findings"]
        assert not readers["result"]["gan"]["ok"] and "labelTrainIds" in readers["result"]["gan"]["error"]
        assert all(c["ok"] for c in readers["result"]["mmseg"].values())
        tails.pop("readers")
    assert not tails, json.dumps(tails, indent=1)[-6000:]
    expected = {"readers", "model", "train", "resume", "export", "export_half", "generate", "datasets", "seg_pool",
                "seg_online"} | ({"seg_batch"} if dataset == "ade20k" else set())
    assert expected <= set(stages)

    gan_classes, seg_classes = CLASSES[dataset]
    model = stages["model"]["result"]
    assert model["num_classes"] == gan_classes and model["use_instance_edges"] == edges
    assert model["generator_preset"] == "tiny" and model["discriminator_backbone"] == "tf_efficientnet_lite0"
    assert model["gflops_generator_forward"] > 0 and model["gflops_train_step_b1"] > model["gflops_generator_forward"]
    if edges:  # the training batch carried the instance edges the generator takes
        assert "edges" in stages["readers_gan_view" if "readers_gan_view" in stages else "readers"][
            "result"]["gan"]["train_item"]
    assert record["data"]["splits"]["train"]["classes_present"] == len(raw_class_ids(dataset))
    datasets = stages["datasets"]["result"]["configs"]
    assert {c.rsplit("_", 1)[1] for c in datasets} >= {"real", "pool", "online"}
    for name, config in datasets.items():
        if "same_datasets_as" not in config:
            assert config["train_dataloader"]["classes"] == seg_classes, name
    assert [r["iter"] for r in record["cli_iteration_times"]][-1] == 3  # the resumed run went on to iteration 3
    sizes = record["sizes_mb"]
    assert sizes["export --half"] < sizes["export fp32"]
