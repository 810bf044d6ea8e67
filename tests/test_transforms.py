"""DPSIMSAugment / DPSIMSPoolAugment / MapLabelIds: the transforms alone, and inside a real mmengine Runner
training a real mmseg model."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from conftest import tiny_generator_checkpoint

from dpsims_aug.data.writers import write_dataset
from dpsims_aug.labels import LabelMapError, cityscapes_label_space, embedded_label_space
from dpsims_aug.mm.transforms import DPSIMSAugment, DPSIMSPoolAugment, MapLabelIds
from dpsims_aug.pool.format import read_manifest_records
from dpsims_aug.pool.writer import generate
from dpsims_aug.synthesis import derive_seed

REPO = Path(__file__).resolve().parents[1]
SPACE = embedded_label_space()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("embedded")
    write_dataset(root, "ade20k", n_train=8, n_val=4, size=(64, 64))
    return root


@pytest.fixture(scope="module")
def pool(data, ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pool") / "pool"
    generate(labels=data, n=2, out=out, checkpoint=ckpt, split="train", batch_size=4, progress=False, workers=1)
    return out


def _results(data: Path, i: int = 0, reduce_zero_label: bool = True) -> dict:
    """What LoadImageFromFile + LoadAnnotations give for training sample i."""
    seg = data / "annotations" / "training" / f"scene_{i:06d}.png"
    img_path = data / "images" / "training" / f"scene_{i:06d}.jpg"
    raw = np.asarray(mmcv.imread(str(seg), flag="unchanged"), dtype=np.uint8)
    gt = SPACE.to_contiguous(raw) if reduce_zero_label else raw  # embedded ids: same as mmseg's reduce_zero_label
    img = mmcv.imread(str(img_path))
    return dict(img=img, img_path=str(img_path), seg_map_path=str(seg), gt_seg_map=gt.copy(),
                reduce_zero_label=reduce_zero_label, label_map=None, seg_fields=["gt_seg_map"], sample_idx=i)


def test_online_replaces_image_keeps_labels_and_is_deterministic(ckpt, data):
    t = DPSIMSAugment(checkpoint=ckpt, prob=1.0)
    r = _results(data)
    real, gt = r["img"].copy(), r["gt_seg_map"].copy()
    out = t(r)
    assert out["dpsims_augmented"]
    assert out["img"].dtype == np.uint8 and out["img"].shape == real.shape
    assert not np.array_equal(out["img"], real)
    np.testing.assert_array_equal(out["gt_seg_map"], gt)
    # Same seed, same sample, same visit -> same image; the second visit draws another one.
    t2 = DPSIMSAugment(checkpoint=ckpt, prob=1.0)
    first = t2(_results(data))["img"]
    np.testing.assert_array_equal(first, out["img"])
    second = t2(_results(data))["img"]
    assert not np.array_equal(first, second)
    # BGR: equals the synthesizer's RGB output reversed.
    rgb = t.synthesizer.synthesize(SPACE.to_contiguous(mmcv.imread(r["seg_map_path"], flag="unchanged"))[None],
                                   [0])[0]
    assert rgb.shape == real.shape
    other_seed = DPSIMSAugment(checkpoint=ckpt, prob=1.0, seed=1)(_results(data))["img"]
    assert not np.array_equal(other_seed, out["img"])


def test_prob_zero_keeps_image_and_prob_is_deterministic(ckpt, data):
    r = _results(data)
    real = r["img"].copy()
    out = DPSIMSAugment(checkpoint=ckpt, prob=0.0)(r)
    assert out["img"] is r["img"] and np.array_equal(out["img"], real) and not out["dpsims_augmented"]
    decisions = []
    for _ in range(2):
        t = DPSIMSAugment(checkpoint=ckpt, prob=0.5, seed=3)
        decisions.append([t(_results(data, i % 8))["dpsims_augmented"] for i in range(16)])
    assert decisions[0] == decisions[1]
    assert 0 < sum(decisions[0]) < 16


def test_reduce_zero_label_both_ways_give_the_same_image(ckpt, data):
    reduced = DPSIMSAugment(checkpoint=ckpt, prob=1.0)(_results(data, 1, reduce_zero_label=True))
    raw = DPSIMSAugment(checkpoint=ckpt, prob=1.0)(_results(data, 1, reduce_zero_label=False))
    np.testing.assert_array_equal(reduced["img"], raw["img"])
    # The explicit argument overrides results['reduce_zero_label'].
    forced = DPSIMSAugment(checkpoint=ckpt, prob=1.0, reduce_zero_label=False)
    r = _results(data, 1, reduce_zero_label=False)
    r["reduce_zero_label"] = True
    np.testing.assert_array_equal(forced(r)["img"], raw["img"])


def test_label_map_is_inverted(ckpt, data):
    """mmseg remapped classes (new = 9 - old): the generator must still see the original classes."""
    plain = DPSIMSAugment(checkpoint=ckpt, prob=1.0)(_results(data, 2))
    r = _results(data, 2)
    label_map = {old: 9 - old for old in range(10)}
    gt = r["gt_seg_map"]
    r["gt_seg_map"] = np.where(gt == 255, 255, 9 - gt.astype(np.int64)).astype(np.uint8)
    r["label_map"] = label_map
    np.testing.assert_array_equal(DPSIMSAugment(checkpoint=ckpt, prob=1.0)(r)["img"], plain["img"])


def test_unknown_ids_name_the_ids_and_the_file(ckpt, data):
    t = DPSIMSAugment(checkpoint=ckpt, prob=1.0)
    r = _results(data)
    r["gt_seg_map"][:2, :2] = 42
    with pytest.raises(LabelMapError, match=r"42.*") as err:
        t(r)
    assert r["seg_map_path"] in str(err.value)
    r = _results(data, reduce_zero_label=False)
    r["gt_seg_map"][0, 0] = 11  # raw 11: not an embedded class
    with pytest.raises(LabelMapError, match=r"\[11\]"):
        t(r)


def test_other_label_space_maps_through_raw_ids(tmp_path, data):
    """Cityscapes trainIds (contiguous ids of 'cityscapes19') drive a 35-labelId generator."""
    path = tiny_generator_checkpoint(tmp_path / "city.safetensors", label_space=cityscapes_label_space(False))
    t = DPSIMSAugment(checkpoint=path, prob=1.0, label_space="cityscapes19", contiguous_labels=True)
    train_ids = np.array([[0, 1, 255, 18]], np.uint8).repeat(32, 0).repeat(8, 1)
    r = dict(img=np.zeros((32, 32, 3), np.uint8), gt_seg_map=train_ids, seg_map_path="x_gtFine_labelTrainIds.png",
             reduce_zero_label=False)
    lut_ids = t.model_labels(r)
    assert set(np.unique(lut_ids).tolist()) == {7, 8, 33, 255}  # road, sidewalk, bicycle labelIds; ignore
    assert t(r)["img"].shape == (32, 32, 3)
    r["gt_seg_map"] = train_ids.copy()
    r["gt_seg_map"][0, 0] = 19
    with pytest.raises(LabelMapError, match=r"\[19\]"):
        t(r)


def test_size_policies_on_a_non_multiple_size(ckpt):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 10, size=(50, 90)).astype(np.uint8)
    gt[:5] = 255
    for policy in ("resize", "pad"):
        t = DPSIMSAugment(checkpoint=ckpt, prob=1.0, size_policy=policy)
        r = dict(img=np.zeros((50, 90, 3), np.uint8), gt_seg_map=gt.copy(), seg_map_path="odd.png",
                 reduce_zero_label=True)
        out = t(r)
        assert out["img"].shape == (50, 90, 3) and out["img"].dtype == np.uint8
        np.testing.assert_array_equal(out["gt_seg_map"], gt)
    t = DPSIMSAugment(checkpoint=ckpt, size_policy="resize")
    assert t.synthesis_size(50, 90) == (64, 96)  # tiny preset trains at 64x64: scaled to ~that area, rounded up
    assert t.synthesis_size(640, 960) == (64, 96)  # area ~64*64, aspect kept, multiples of 32
    assert t.synthesis_size(32, 32) == (32, 32)  # never upscaled
    assert DPSIMSAugment(checkpoint=ckpt, size_policy="pad").synthesis_size(50, 90) == (64, 96)


def test_float_image_dtype_is_kept(ckpt, data):
    r = _results(data)
    r["img"] = r["img"].astype(np.float32)
    out = DPSIMSAugment(checkpoint=ckpt, prob=1.0)(r)
    assert out["img"].dtype == np.float32


def test_repr_pickle_and_errors(ckpt, data, pool, tmp_path):
    t = DPSIMSAugment(checkpoint=ckpt, prob=0.3, seed=7)
    text = repr(t)
    for part in ("DPSIMSAugment(", "mode='online'", "prob=0.3", str(ckpt), "device='cpu'", "size_policy='resize'",
                 "seed=7"):
        assert part in text
    assert "pool=" in repr(DPSIMSPoolAugment(pool=pool))
    # prob=1: the first call always synthesizes (draws depend on the absolute seg_map_path, i.e. on tmp_path).
    t = DPSIMSAugment(checkpoint=ckpt, prob=1.0, seed=7)
    t(_results(data))  # builds the model
    assert t._synth is not None
    blob = pickle.dumps(t)
    assert len(blob) < 4096  # no weights inside
    clone = pickle.loads(blob)
    assert clone._synth is None and dict(clone._visits) == {}
    np.testing.assert_array_equal(clone(_results(data))["img"], DPSIMSAugment(checkpoint=ckpt, prob=1.0, seed=7)(
        _results(data))["img"])
    with pytest.raises(FileNotFoundError, match="nope"):
        DPSIMSAugment(checkpoint=tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="manifest"):
        DPSIMSPoolAugment(pool=tmp_path)
    with pytest.raises(ValueError, match="prob"):
        DPSIMSAugment(checkpoint=ckpt, prob=2)
    with pytest.raises(KeyError, match="LoadAnnotations"):
        t(dict(img=np.zeros((8, 8, 3), np.uint8)))


def test_pool_mode_picks_generated_images(data, pool):
    records = read_manifest_records(pool)
    assert len(records) == 16
    t = DPSIMSPoolAugment(pool=pool, prob=1.0, seed=0)
    seen = set()
    for visit in range(16):  # both of the 2 pool images get drawn (fails with probability 2**-15)
        r = _results(data, 3)
        out = t(r)
        assert out["dpsims_augmented"] and out["img"].shape == (64, 64, 3) and out["img"].dtype == np.uint8
        candidates = [mmcv.imread(str(pool / rec["image"])) for (key, _), rec in sorted(records.items())
                      if key.endswith("scene_000003.png")]
        assert len(candidates) == 2
        match = [k for k, c in enumerate(candidates) if np.array_equal(c, out["img"])]
        assert len(match) == 1, visit
        seen.add(match[0])
    assert seen == {0, 1}
    # Deterministic draws.
    a = [DPSIMSPoolAugment(pool=pool, prob=0.5, seed=1)(_results(data, i))["img"] for i in range(8)]
    b = [DPSIMSPoolAugment(pool=pool, prob=0.5, seed=1)(_results(data, i))["img"] for i in range(8)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_pool_lookup_by_stem_for_train_id_files(data, pool):
    t = DPSIMSPoolAugment(pool=pool)
    assert t.pool_images("/elsewhere/annotations/training/scene_000001.png") == [
        "images/training/scene_000001_s0.jpg", "images/training/scene_000001_s1.jpg"]
    assert len(t.pool_images("/x/training/scene_000001_labelTrainIds.png")) == 2
    assert t.pool_images("/x/validation/scene_000001.png") == []


def test_pool_missing_entry_skip_or_error(data, pool):
    r = _results(data)
    r["seg_map_path"] = str(data / "annotations" / "validation" / "scene_000000.png")  # not generated
    real = r["img"].copy()
    out = DPSIMSPoolAugment(pool=pool, prob=1.0)(r)
    assert not out["dpsims_augmented"] and np.array_equal(out["img"], real)
    with pytest.raises(KeyError, match="validation/scene_000000.png") as err:
        DPSIMSPoolAugment(pool=pool, prob=1.0, on_missing="error")(r)
    assert str(pool) in str(err.value)
    r = _results(data)
    r["gt_seg_map"] = r["gt_seg_map"][:32]
    with pytest.raises(ValueError, match="right after LoadAnnotations"):
        DPSIMSPoolAugment(pool=pool, prob=1.0)(r)


def test_map_label_ids():
    t = MapLabelIds("cityscapes19")
    r = dict(gt_seg_map=np.array([[7, 8, 0, 33, 255]], np.uint8), seg_map_path="a.png")
    np.testing.assert_array_equal(t(r)["gt_seg_map"], [[0, 1, 255, 18, 255]])
    assert repr(t) == "MapLabelIds(label_space='cityscapes19')"
    with pytest.raises(LabelMapError, match="a.png"):
        t(dict(gt_seg_map=np.array([[40]], np.uint8), seg_map_path="a.png"))


def test_registered_in_mmseg_and_built_from_config(ckpt):
    from mmengine.registry import DefaultScope
    from mmseg.registry import TRANSFORMS

    # Build in mmseg's scope, as a config with default_scope='mmseg' does (an earlier test's
    # Runner may have left another scope current).
    with DefaultScope.overwrite_default_scope("mmseg"):
        t = TRANSFORMS.build(dict(type="DPSIMSAugment", checkpoint=str(ckpt), prob=0.25))
    assert isinstance(t, DPSIMSAugment) and t.prob == 0.25
    assert TRANSFORMS.get("MapLabelIds") is MapLabelIds


def test_pool_transform_from_config_and_the_old_pool_mode_refused(ckpt, pool):
    from mmengine.registry import DefaultScope
    from mmseg.registry import TRANSFORMS

    with DefaultScope.overwrite_default_scope("mmseg"):
        t = TRANSFORMS.build(dict(type="DPSIMSPoolAugment", pool=str(pool), prob=0.25, seed=2, on_missing="error"))
    assert type(t) is DPSIMSPoolAugment and (t.prob, t.seed, t.on_missing, t.pool) == (0.25, 2, "error", pool)
    assert not isinstance(t, DPSIMSAugment)  # no generator, checkpoint or label space arguments
    # The old spelling of the pool transform names the new one (not a TypeError about its pool= argument).
    with pytest.raises(ValueError, match=r"DPSIMSPoolAugment\(pool=\.\.\.\)"):
        DPSIMSAugment(mode="pool", pool=str(pool), prob=0.5, on_missing="error")
    with pytest.raises(ValueError, match="DPSIMSPoolAugment"), DefaultScope.overwrite_default_scope("mmseg"):
        TRANSFORMS.build(dict(type="DPSIMSAugment", mode="pool", pool=str(pool)))
    assert DPSIMSAugment(checkpoint=ckpt, mode="online").mode == "online"
    with pytest.raises(ValueError, match="mode must be one of"):
        DPSIMSAugment(checkpoint=ckpt, mode="offline")
    with pytest.raises(TypeError, match="on_missing"):  # pool-only arguments are not silently dropped
        DPSIMSAugment(checkpoint=ckpt, on_missing="error")


# ------------------------------------------------------------------------------------------ Runner


class RecordAugmented:
    """Pipeline step (test helper) appending ``<pid> <dpsims_augmented>`` per sample to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, results: dict) -> dict:
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()} {int(results.get('dpsims_augmented', -1))}\n")
        return results


def _register_recorder() -> str:
    from mmseg.registry import TRANSFORMS

    TRANSFORMS.register_module(name="TestRecordAugmented", module=RecordAugmented, force=True)
    return "TestRecordAugmented"


def _records(path: Path) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]


def _runner_cfg(config: str, data: Path, work_dir: Path, transform: dict | None, num_workers: int,
                record: Path | None = None, pool: Path | None = None):
    """The shipped embedded config, shrunk: crop 64, batch 2, 2 iterations, no validation or checkpoints."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(REPO / "augment" / "embedded" / config))
    cfg.work_dir = str(work_dir)
    cfg.crop_size = (64, 64)
    cfg.model.data_preprocessor.size = (64, 64)
    pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations"),
        *([transform] if transform else []),
        *([dict(type=_register_recorder(), path=str(record))] if record else []),
        dict(type="RandomCrop", crop_size=(64, 64)),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PackSegInputs"),
    ]
    ds = cfg.train_dataloader.dataset
    if ds.type == "SyntheticMixDataset":  # the pool mix: real (with `transform`) + the generated pool (without)
        real, synthetic = ds.real, ds.synthetic
        real.update(data_root=str(data), pipeline=pipeline)
        synthetic.update(data_root=str(pool), pipeline=[p for p in pipeline if p is not transform])
    else:
        ds.update(data_root=str(data), pipeline=pipeline)
    cfg.train_dataloader.update(batch_size=2, num_workers=num_workers, persistent_workers=num_workers > 0)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=1000)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1000, by_epoch=False)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1)
    cfg.default_hooks.pop("visualization", None)
    cfg.param_scheduler = []
    cfg.randomness = dict(seed=0)
    cfg.env_cfg.mp_cfg = dict(mp_start_method="fork", opencv_num_threads=0)
    return cfg


def _train(cfg) -> list[float]:
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.get_scalar("train/loss")
    assert scalars is not None
    losses = list(scalars.data[0])
    assert len(losses) == 2 and all(np.isfinite(losses))
    return losses


def test_runner_trains_with_online_transform_in_a_forked_worker(ckpt, data, tmp_path):
    t = dict(type="DPSIMSAugment", checkpoint=str(ckpt), prob=1.0, seed=0)
    record = tmp_path / "record.txt"
    cfg = _runner_cfg("fastscnn_embedded_online.py", data, tmp_path / "online", t, num_workers=1, record=record)
    assert cfg.custom_imports["imports"] == ["dpsims_aug.mm"]
    _train(cfg)
    rows = _records(record)
    assert len(rows) >= 4 and all(aug == 1 for _, aug in rows)
    assert {pid for pid, _ in rows} != {os.getpid()}  # synthesized in the forked worker


def test_runner_trains_pool_mix_config_with_pool_transform(data, pool, tmp_path):
    t = dict(type="DPSIMSPoolAugment", pool=str(pool), prob=1.0, on_missing="error")
    record = tmp_path / "record.txt"
    cfg = _runner_cfg("fastscnn_embedded_pool.py", data, tmp_path / "pool", t, num_workers=0, record=record,
                      pool=pool)
    assert cfg.train_dataloader.dataset.synthetic_share == 0.25  # the shipped default
    cfg.train_dataloader.dataset.synthetic_share = 0.5  # both kinds in 4 samples with this seed
    _train(cfg)
    rows = _records(record)
    # Real samples got a pool image from DPSIMSPoolAugment (1); pool samples came through the mix untouched (-1).
    # With the fixed seed both kinds occur in the 4 samples (a mix that never samples one set fails).
    assert len(rows) >= 4 and {aug for _, aug in rows} == {1, -1}


def test_augment_configs_resume_with_safe_loading(data, tmp_path):
    """The augment/ runtime's SafeCheckpointHook: an mmseg run resumes although torch.load is weights_only=True
    (mmengine 0.10.7 alone fails on its pickled HistoryBuffer)."""
    from mmengine.runner import Runner

    cfg = _runner_cfg("fastscnn_embedded_real.py", data, tmp_path / "run", None, num_workers=0)
    assert {"type": "SafeCheckpointHook"} in cfg.custom_hooks
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=2, by_epoch=False)
    Runner.from_cfg(cfg).train()
    assert (tmp_path / "run" / "iter_2.pth").is_file()
    cfg.train_cfg.max_iters = 3
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 3
    assert len(runner.message_hub.get_scalar("train/loss").data[0]) == 3  # history restored from the checkpoint


def test_online_new_layouts_change_labels_and_image_together(ckpt, data):
    t = DPSIMSAugment(checkpoint=ckpt, prob=1.0, new_layouts=dict(scale=(1.2, 1.6), max_pastes=2, paste_prob=1.0))
    assert t.new_layouts.ignore_ids == (255,)
    changed = 0
    for i in range(4):
        r = _results(data, i)
        before = r["gt_seg_map"].copy()
        out = t(r)
        assert out["dpsims_augmented"] and out["gt_seg_map"].shape == before.shape
        assert set(np.unique(out["gt_seg_map"]).tolist()) <= set(range(10)) | {255}
        changed += not np.array_equal(out["gt_seg_map"], before)
        # The image is the generator's image of the *new* label map (same noise seed as without new_layouts).
        rng = np.random.default_rng(derive_seed(0, out["seg_map_path"], 0))
        rng.random()
        direct = DPSIMSAugment(checkpoint=ckpt, prob=1.0)._synthesize(out, int(rng.integers(1 << 62)))
        assert np.array_equal(direct, out["img"])
    assert changed >= 3
    # Deterministic per (seed, map, visit) in a fresh process state.
    a = DPSIMSAugment(checkpoint=ckpt, prob=1.0, new_layouts={})(_results(data, 1))
    b = DPSIMSAugment(checkpoint=ckpt, prob=1.0, new_layouts={})(_results(data, 1))
    assert np.array_equal(a["gt_seg_map"], b["gt_seg_map"]) and np.array_equal(a["img"], b["img"])
    with pytest.raises(TypeError, match="new_layouts"):  # a pool has no images for new label maps
        DPSIMSPoolAugment(pool=data, new_layouts={})
    with pytest.raises(ValueError, match="bad new_layouts"):
        DPSIMSAugment(checkpoint=ckpt, new_layouts=dict(zoom=2))


def test_two_stage_configs_pretrain_on_the_mix_and_finetune_from_it(data, pool, tmp_path):
    from mmengine.runner import Runner

    from dpsims_aug.mm.checkpoints import load_mmengine_checkpoint

    pre = _runner_cfg("fastscnn_embedded_pretrain.py", data, tmp_path / "pre", None, num_workers=0, pool=pool)
    assert pre.train_dataloader.dataset.synthetic_share == 0.75
    pre.default_hooks.checkpoint = dict(type="CheckpointHook", interval=2, by_epoch=False)
    Runner.from_cfg(pre).train()
    fin = _runner_cfg("fastscnn_embedded_finetune.py", data, tmp_path / "fin", None, num_workers=0)
    assert fin.train_dataloader.dataset.type == "BaseSegDataset"
    fin.load_from = str(tmp_path / "pre" / "iter_2.pth")  # the shipped path names the full stage-1 run
    runner = Runner.from_cfg(fin)
    runner.load_or_resume()
    stage1 = load_mmengine_checkpoint(tmp_path / "pre" / "iter_2.pth")["state_dict"]
    assert all(torch.equal(v.cpu(), stage1[k]) for k, v in runner.model.state_dict().items())
    runner.train()
    assert runner.iter == 2
