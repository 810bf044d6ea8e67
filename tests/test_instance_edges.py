"""Instance maps, end to end: the edge rule, the readers' naming conventions (Cityscapes instanceIds, COCO panoptic,
instances/), the embedded Cityscapes writer, the trainer (real Runner), ``generate`` and ``DPSIMSAugment`` with a
generator trained with instance edges, and their refusals of label maps without instance maps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import save_generator, tiny_generator
from PIL import Image

from dpsims_aug.checkpoint import load_generator_checkpoint
from dpsims_aug.data.readers import find_label_maps
from dpsims_aug.data.writers import write_dataset
from dpsims_aug.instance_edges import (
    decode_panoptic_rgb,
    find_instance_map,
    instance_edges,
    read_instance_map,
)
from dpsims_aug.label_maps import read_label_map, write_label_map
from dpsims_aug.labels import LabelMapError, embedded_label_space
from dpsims_aug.synthesis import label_edges

REPO = Path(__file__).resolve().parents[1]
SPACE = embedded_label_space()
CITY = "gtFine/train/scene"


def _pix2pixhd_edges(t: torch.Tensor) -> torch.Tensor:
    """pix2pixHD's / SPADE's get_edges, verbatim (on a (B, 1, H, W) tensor)."""
    edge = torch.zeros_like(t, dtype=torch.bool)
    edge[:, :, :, 1:] = edge[:, :, :, 1:] | (t[:, :, :, 1:] != t[:, :, :, :-1])
    edge[:, :, :, :-1] = edge[:, :, :, :-1] | (t[:, :, :, 1:] != t[:, :, :, :-1])
    edge[:, :, 1:, :] = edge[:, :, 1:, :] | (t[:, :, 1:, :] != t[:, :, :-1, :])
    edge[:, :, :-1, :] = edge[:, :, :-1, :] | (t[:, :, 1:, :] != t[:, :, :-1, :])
    return edge.float()


# ------------------------------------------------------------------------------------------------ the edge rule


def test_two_instances_of_one_class_are_split_by_an_edge_that_the_label_map_lacks():
    labels = np.full((4, 6), 26, np.int32)  # one "car" region ...
    instances = np.array([[26000] * 3 + [26001] * 3] * 4, np.int32)  # ... holding two cars side by side
    assert not label_edges(torch.from_numpy(labels)[None]).any()
    edges = instance_edges(instances)
    assert edges.dtype == np.float32 and edges.shape == (4, 6)
    np.testing.assert_array_equal(edges, np.array([[0, 0, 1, 1, 0, 0]] * 4, np.float32))  # both sides, 2 px wide


def test_class_boundaries_are_edges_and_the_rule_is_pix2pixhds():
    ids = np.array([[1, 1, 2],
                    [1, 1, 2],
                    [3, 3, 3]], np.int32)
    np.testing.assert_array_equal(instance_edges(ids), [[0, 1, 1], [1, 1, 1], [1, 1, 1]])
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.integers(0, 4, (3, 9, 11)))
    reference = _pix2pixhd_edges(batch[:, None])
    assert torch.equal(instance_edges(batch[:, None]), reference)  # tensors: any leading dimensions
    assert torch.equal(label_edges(batch), reference)  # class boundaries: the same rule on the label map
    np.testing.assert_array_equal(instance_edges(batch.numpy()), reference[:, 0].numpy())  # numpy = torch
    assert not instance_edges(np.full((5, 5), 7)).any()  # image borders are not edges
    with pytest.raises(ValueError, match="H, W"):
        instance_edges(np.zeros(5))


def test_coco_panoptic_png_decodes_to_segment_ids(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (1, 0, 0)  # id 1
    rgb[0, 1] = (0, 1, 0)  # id 256
    rgb[0, 2] = (0, 0, 1)  # id 65536
    rgb[1, :] = (17, 2, 3)  # 17 + 2 * 256 + 3 * 65536
    path = tmp_path / "000000000139.png"
    Image.fromarray(rgb, "RGB").save(path)
    ids = read_instance_map(path)
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [[1, 256, 65536], [17 + 512 + 196608] * 3])
    np.testing.assert_array_equal(decode_panoptic_rgb(rgb), ids)
    with pytest.raises(LabelMapError, match="instance map not found"):
        read_instance_map(tmp_path / "missing.png")


# ------------------------------------------------------------------------------------------------ readers / writer


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    """The embedded scenes in the Cityscapes format (with *_gtFine_instanceIds.png), 64x64."""
    root = tmp_path_factory.mktemp("city") / "data"
    write_dataset(root, "cityscapes", n_train=6, n_val=2, size=(64, 64), seed=0)
    return root


def _split_scenes(root: Path) -> list[str]:
    """Names of training scenes whose instance boundaries include more than their class boundaries."""
    names = []
    for inst in sorted((root / CITY).glob("*_gtFine_instanceIds.png")):
        labels = read_label_map(inst.with_name(inst.name.replace("instanceIds", "labelIds")))
        if (instance_edges(read_instance_map(inst)) > instance_edges(labels)).any():
            names.append(inst.name.replace("_gtFine_instanceIds.png", ""))
    return names


def test_the_cityscapes_writer_writes_instance_ids_by_cityscapes_convention(city):
    things = {SPACE.raw_ids[c] for c in (6, 7, 8)}  # tree, rock, building (the scenes' separate objects)
    for inst_path in sorted((city / "gtFine").rglob("*_gtFine_instanceIds.png")):
        with Image.open(inst_path) as img:
            assert img.mode.startswith("I")  # a 16-bit PNG, as Cityscapes'
        inst = read_instance_map(inst_path)
        raw = read_label_map(inst_path.with_name(inst_path.name.replace("instanceIds", "labelIds")))
        objects = inst >= 1000
        np.testing.assert_array_equal(inst[~objects], raw[~objects])  # stuff (and unlabeled): the class id
        np.testing.assert_array_equal(inst[objects] // 1000, raw[objects])  # things: class id * 1000 + k
        assert set(np.unique(raw[objects]).tolist()) <= things
        assert (instance_edges(inst) >= instance_edges(raw)).all()  # class boundaries are instance boundaries
    assert _split_scenes(city), "no scene where touching objects of one class get an edge of their own"


def test_the_cityscapes_reader_finds_instance_maps_and_names_missing_ones(city, tmp_path):
    refs = find_label_maps(city, split="train")
    assert len(refs) == 6
    for ref in refs:
        assert ref.instance_path == ref.path.with_name(ref.path.name.replace("labelIds", "instanceIds"))
        assert ref.read_instances().shape == ref.read().shape
    assert all(r.instance_path is not None for r in find_label_maps(city, split="train", train_ids=True))
    # A copy without one instance map: that ref has none, and reading it names the map and the expected file.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(city, copy)
    gone = copy / CITY / "scene_000002_000019_gtFine_instanceIds.png"
    gone.unlink()
    ref = {r.key: r for r in find_label_maps(copy)}[f"{CITY}/scene_000002_000019_gtFine_labelIds.png"]
    assert ref.instance_path is None and ref.expected_instance_path == gone
    with pytest.raises(LabelMapError, match=r"scene_000002_000019_gtFine_labelIds\.png: has no instance map "
                                            r"\(expected .*scene_000002_000019_gtFine_instanceIds\.png\)"):
        ref.read_instances()


def test_coco_panoptic_and_instances_folder_conventions(tmp_path):
    def label(path: Path) -> Path:
        write_label_map(path, np.zeros((4, 4), np.uint8))
        return path

    def panoptic(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8), "RGB").save(path)
        return path

    coco = tmp_path / "coco_stuff164k"
    for split in ("train2017", "val2017"):
        (coco / "images" / split).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(coco / "images" / split / "000000000009.jpg")
    raw = label(coco / "annotations/train2017/000000000009.png")
    mmseg_name = coco / "annotations/train2017/000000000009_labelTrainIds.png"  # mmseg's converted map
    beside = panoptic(coco / "annotations/panoptic_train2017/000000000009.png")
    assert find_instance_map(raw) == (beside, beside)
    assert find_instance_map(mmseg_name)[0] == beside
    # The coco_stuff reader does not take the panoptic folder for a split, and finds the panoptic PNG.
    label(coco / "annotations/val2017/000000000009.png")
    refs = find_label_maps(coco, dataset_format="coco_stuff", split="train")
    assert [r.key for r in refs] == ["annotations/train2017/000000000009.png"] and refs[0].instance_path == beside
    # Not there: named by the first place looked at; COCO's own folders (a root-level panoptic folder) are found too.
    val = find_label_maps(coco, dataset_format="coco_stuff", split="val")[0]
    assert val.instance_path is None
    assert val.expected_instance_path == coco / "annotations/panoptic_val2017/000000000009.png"
    root_level = panoptic(coco / "panoptic_val2017/000000000009.png")
    assert find_label_maps(coco, dataset_format="coco_stuff", split="val")[0].instance_path == root_level
    # A folder the user names comes first (a folder holding panoptic_<split>/, or a flat one).
    user = panoptic(tmp_path / "mine/panoptic_val2017/000000000009.png")
    assert find_label_maps(coco, dataset_format="coco_stuff", split="val",
                           instance_dir=tmp_path / "mine")[0].instance_path == user
    flat = panoptic(tmp_path / "flat/000000000009.png")
    assert find_instance_map(raw, instance_dir=tmp_path / "flat")[0] == flat
    # The folder format: instances/<same relative path> beside labels/.
    folder = tmp_path / "folder"
    lab = label(folder / "labels/sub/a.png")
    assert find_instance_map(lab) == (None, folder / "instances/sub/a.png")
    inst = label(folder / "instances/sub/a.png")
    assert find_instance_map(lab)[0] == inst


# ------------------------------------------------------------------------------------------------ training


def test_the_training_dataset_transforms_instance_maps_like_label_maps(city, monkeypatch):
    from train_gan.data import SegPairDataset

    plain = SegPairDataset(city, crop_size=(32, 48), scale_range=(1.0, 1.6), flip=True)
    assert "edges" not in plain[0]
    data = SegPairDataset(city, crop_size=(32, 48), scale_range=(1.0, 1.6), flip=True, instance_edges=True)
    split = set(_split_scenes(city))
    extra = 0
    for i in range(12):  # several epochs: other scales, crops and flips
        item = data[i]
        assert item["edges"].shape == (1, 32, 48) and item["edges"].dtype == torch.float32
        assert torch.equal(item["label"], plain[i]["label"])  # the same sample as without edges
        assert (item["edges"] >= label_edges(item["label"][None])[0]).all()
        extra += int((item["edges"] > label_edges(item["label"][None])[0]).any())
    assert extra and split  # touching objects of one class got their edge in some crops
    # With the label map itself as the instance map, the edges are exactly the final crop's class boundaries: the
    # instance map went through the same resize, crop and flip.
    monkeypatch.setattr(SegPairDataset, "load_instances",
                        lambda self, index, shape: self.load(index)[1].astype(np.int32))
    for i in range(12):
        item = data[i]
        assert torch.equal(item["edges"], label_edges(item["label"][None])[0]), i


def test_the_training_dataset_refuses_label_maps_without_instance_maps(city, tmp_path):
    import shutil

    from train_gan.data import SegPairDataset

    copy = tmp_path / "copy"
    shutil.copytree(city, copy)
    for i in (1, 3):
        (copy / CITY / f"scene_00000{i}_000019_gtFine_instanceIds.png").unlink()
    SegPairDataset(copy)  # without edges nothing is needed
    with pytest.raises(LabelMapError, match=r"scene_000001_000019_gtFine_labelIds\.png: has no instance map \(expected "
                                            r".*scene_000001_000019_gtFine_instanceIds\.png\).*2 of 6 label maps"):
        SegPairDataset(copy, instance_edges=True)


TINY_EDGES = """
model = dict(
    generator=dict(preset="tiny", use_instance_edges=True),
    discriminator=dict(decoder_channels=8, max_decoder_channels=16, high_res_channels=8),
    ema_bn_batches=2,
)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, crop_size=64, scale_range=(1.0, 1.0)))
train_cfg = dict(max_iters=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
custom_hooks = [
    dict(type="GANCheckpointHook"),
    dict(type="SampleGridHook", interval=2, num_images=2, num_seeds=1),
    dict(type="GANEvaluationHook", interval=2, num_images=2, num_seeds=1, batch_size=2),
    dict(type="ExportGeneratorHook"),
]
"""


def _train(config: Path, work_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train_gan.train", str(config), "--work-dir", str(work_dir)],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_a_runner_trains_with_instance_edges_and_refuses_a_dataset_without_them(city, tmp_path):
    config = tmp_path / "edges.py"
    config.write_text(f'_base_ = ["{REPO / "train_gan/configs/embedded_small.py"}"]\n'
                      f'data_root = "{city}"\n' + TINY_EDGES)
    work = tmp_path / "run"
    result = _train(config, work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    export = load_generator_checkpoint(work / "generator_ema.safetensors")
    assert export.generator_config["use_instance_edges"] and "edge_weight" in export.state_dict
    losses = [json.loads(line) for line in next(work.glob("*/vis_data/scalars.json")).read_text().splitlines()]
    assert [r["iter"] for r in losses if "loss_g" in r] == [1, 2]
    assert all(np.isfinite(r["loss_g"]) and np.isfinite(r["loss_d"]) for r in losses if "loss_g" in r)
    assert len(list(work.glob("*/samples/iter_*.png"))) == 1  # the sample grid got the held-out maps' edges
    assert [json.loads(line)["iter"] for line in next(work.glob("*/metrics.jsonl")).read_text().splitlines()] == [2]
    # The same config on a copy without one training (then one held-out) instance map stops before the Runner,
    # naming the map and the file looked for.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(city, copy)
    config.write_text(config.read_text().replace(str(city), str(copy)))
    for gone in (copy / "gtFine/train/scene/scene_000004_000019_gtFine_instanceIds.png",
                 copy / "gtFine/val/scene/scene_000001_000019_gtFine_instanceIds.png"):
        gone.rename(gone.with_suffix(".bak"))
        result = _train(config, tmp_path / "refused")
        assert result.returncode == 2, result.stderr[-3000:]
        label = gone.name.replace("instanceIds", "labelIds")
        assert f"{label}: has no instance map (expected {gone})" in result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "refused").exists()
        gone.with_suffix(".bak").rename(gone)


# ------------------------------------------------------------------------------------------------ generate


@pytest.fixture(scope="module")
def edges_ckpt(tmp_path_factory) -> Path:
    g = tiny_generator(use_instance_edges=True)
    with torch.no_grad():
        g.edge_weight.mul_(4.0)  # a random init with a clearly visible edge input
    return save_generator(tmp_path_factory.mktemp("ckpt") / "edges.safetensors", g)


def _images(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "images").rglob("*.png"))}


def test_generate_uses_instance_edges_and_refuses_maps_without_them(city, edges_ckpt, tmp_path):
    from dpsims_aug.cli import main
    from dpsims_aug.pool.format import read_manifest_records
    from dpsims_aug.pool.writer import GenerateError, generate

    common = dict(n=1, checkpoint=edges_ckpt, batch_size=2, progress=False, workers=1, image_format="png")
    generate(city, out=tmp_path / "instances", **common)
    generate(city, out=tmp_path / "labels", edges="from-labels", **common)
    inst, lab = _images(tmp_path / "instances"), _images(tmp_path / "labels")
    assert sorted(inst) == sorted(lab) and len(inst) == 6
    split = _split_scenes(city)
    for name in inst:  # the instance edges reach the generator: other pixels exactly where they add edges
        assert (inst[name] != lab[name]) == any(name.startswith(s) for s in split), name
    assert {r["edges"] for r in read_manifest_records(tmp_path / "instances").values()} == {"instances"}
    with pytest.raises(GenerateError, match="made with --edges instances, but this run uses --edges from-labels"):
        generate(city, out=tmp_path / "instances", edges="from-labels", **common)

    # A map without its instance map: refused by name and expected path before anything is written ...
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(city, copy)
    gone = copy / CITY / "scene_000003_000019_gtFine_instanceIds.png"
    gone.unlink()
    with pytest.raises(GenerateError, match=r"1 label map\(s\) have no instance map.*--edges from-labels.*\n  .*"
                                            r"scene_000003_000019_gtFine_labelIds\.png: has no instance map "
                                            r"\(expected .*scene_000003_000019_gtFine_instanceIds\.png\)"):
        generate(copy, out=tmp_path / "refused", **common)
    assert not [p for p in (tmp_path / "refused").rglob("*") if p.is_file()]  # (the lock made the empty folder)
    # ... skipped with --on-error skip, or rendered from its class boundaries when asked for explicitly.
    skipped = generate(copy, out=tmp_path / "skipped", on_error="skip", **common)
    assert skipped.generated == 5 and "scene_000003" in skipped.skipped[0][0]
    assert main(["generate", "--labels", str(copy), "--out", str(tmp_path / "cli"), "--checkpoint", str(edges_ckpt),
                 "--n", "1", "--format", "png", "--batch-size", "2", "--edges", "from-labels",
                 "--no-progress"]) == 0
    assert _images(tmp_path / "cli") == lab
    # Instance maps from a folder the user names (a mirror of the label tree).
    mirror = tmp_path / "mine" / "train" / "scene"
    mirror.mkdir(parents=True)
    shutil.copy(city / CITY / gone.name, mirror / gone.name)
    generate(copy, out=tmp_path / "user_dir", instance_dir=tmp_path / "mine", **common)
    assert _images(tmp_path / "user_dir") == inst


# ------------------------------------------------------------------------------------------------ DPSIMSAugment


def _results(root: Path, name: str) -> dict:
    seg = root / CITY / f"{name}_gtFine_labelIds.png"
    raw = read_label_map(seg)
    return dict(img=np.zeros((*raw.shape, 3), np.uint8), seg_map_path=str(seg), gt_seg_map=raw.copy(),
                reduce_zero_label=False, label_map=None, seg_fields=["gt_seg_map"])


def test_dpsims_augment_uses_instance_edges_and_refuses_maps_without_them(city, edges_ckpt, tmp_path):
    pytest.importorskip("mmcv")
    from dpsims_aug.mm.transforms import DPSIMSAugment

    split_names = _split_scenes(city)
    split = split_names[0]
    plain = [name for name in (f"scene_{i:06d}_000019" for i in range(6)) if name not in split_names]
    instances = DPSIMSAugment(checkpoint=edges_ckpt, prob=1.0)
    labels = DPSIMSAugment(checkpoint=edges_ckpt, prob=1.0, edges="from-labels")
    assert instances.uses_instance_edges and "edges='instances'" in repr(instances)
    with_inst, with_lab = instances(_results(city, split))["img"], labels(_results(city, split))["img"]
    assert not np.array_equal(with_inst, with_lab)  # the instance map's extra boundary reaches the generator
    for name in plain[:1]:  # instance edges = class boundaries: the same image
        np.testing.assert_array_equal(instances(_results(city, name))["img"], labels(_results(city, name))["img"])
    # results['instance_path'] (set by a loading step) wins over the naming convention: here the label map itself.
    forced = _results(city, split)
    forced["instance_path"] = forced["seg_map_path"]
    fresh = DPSIMSAugment(checkpoint=edges_ckpt, prob=1.0)
    np.testing.assert_array_equal(fresh(forced)["img"], with_lab)
    # The resize policy resizes the instance map with the labels (a 96x96 map runs at 64x64).
    big = _results(city, split)
    big["gt_seg_map"] = np.kron(big["gt_seg_map"], np.ones((3, 3), np.uint8))[::2, ::2]
    inst96 = np.kron(read_instance_map(city / CITY / f"{split}_gtFine_instanceIds.png"), np.ones((3, 3)))[::2, ::2]
    Image.fromarray(inst96.astype(np.uint16)).save(tmp_path / "inst96.png")
    big["instance_path"], big["img"] = str(tmp_path / "inst96.png"), np.zeros((96, 96, 3), np.uint8)
    assert DPSIMSAugment(checkpoint=edges_ckpt, prob=1.0)(big)["img"].shape == (96, 96, 3)

    # Without its instance map: refused by name (the map and the expected file), unless edges='from-labels'.
    missing = _results(city, split)
    missing["seg_map_path"] = str(tmp_path / "gtFine/train/x/x_000000_000019_gtFine_labelTrainIds.png")
    with pytest.raises(LabelMapError, match=r"x_000000_000019_gtFine_labelTrainIds\.png: has no instance map "
                                            r"\(expected .*x_000000_000019_gtFine_instanceIds\.png\).*"
                                            r"edges='from-labels'"):
        DPSIMSAugment(checkpoint=edges_ckpt, prob=1.0)(missing)
    assert DPSIMSAugment(checkpoint=edges_ckpt, prob=1.0, edges="from-labels")(missing)["dpsims_augmented"]
    wrong_size = _results(city, split)
    wrong_size["gt_seg_map"] = wrong_size["gt_seg_map"][:32]
    with pytest.raises(LabelMapError, match="right after LoadAnnotations"):
        DPSIMSAugment(checkpoint=edges_ckpt, prob=1.0)(wrong_size)
    with pytest.raises(ValueError, match="new_layouts have no instance maps: pass edges='from-labels'"):
        DPSIMSAugment(checkpoint=edges_ckpt, prob=1.0, new_layouts={})
    DPSIMSAugment(checkpoint=edges_ckpt, prob=1.0, new_layouts={}, edges="from-labels")
    with pytest.raises(ValueError, match="edges must be one of instances, from-labels"):
        DPSIMSAugment(checkpoint=edges_ckpt, edges="labels")


def test_tstr_subsets_carry_the_instance_maps(city, tmp_path):
    from dpsims_aug.data.readers import find_pairs
    from dpsims_aug.metrics.tstr import _subset

    subset = _subset(city, find_pairs(city, split="train")[:2], tmp_path / "subset")
    refs = find_label_maps(subset, split="train")
    assert len(refs) == 2 and all(r.instance_path is not None and r.instance_path.is_symlink() for r in refs)


def test_evaluate_synthesizes_with_instance_edges_and_refuses_maps_without_them(city, edges_ckpt, tmp_path):
    import shutil

    from dpsims_aug.data.readers import find_pairs
    from dpsims_aug.metrics.evaluate import evaluate, iter_eval_batches
    from dpsims_aug.synthesis import Synthesizer

    synth = Synthesizer.from_checkpoint(edges_ckpt, batch_size=2)
    pairs = find_pairs(city, split="train")
    keys = [label.name for _, label in pairs]
    instances = [find_instance_map(label)[0] for _, label in pairs]
    with_inst = next(iter_eval_batches(synth, pairs, keys, SPACE, 1, maps_per_batch=6, instance_paths=instances))
    with_lab = next(iter_eval_batches(synth, pairs, keys, SPACE, 1, maps_per_batch=6))
    split = _split_scenes(city)
    for (_, label), a, b in zip(pairs, with_inst.fakes, with_lab.fakes):
        assert (not np.array_equal(a, b)) == any(label.name.startswith(s) for s in split), label.name
    copy = tmp_path / "copy"
    shutil.copytree(city, copy)
    (copy / "gtFine/val/scene/scene_000000_000019_gtFine_instanceIds.png").unlink()
    with pytest.raises(LabelMapError, match=r"scene_000000_000019_gtFine_labelIds\.png: has no instance map.*"
                                            r"--edges from-labels"):
        evaluate(edges_ckpt, copy, split="val", progress=False)
