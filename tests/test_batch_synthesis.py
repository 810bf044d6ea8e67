"""Issue 28 (3): online synthesis batched in the segmenter's data preprocessor. The workers' DPSIMSSelect makes
DPSIMSAugment's draws; DPSIMSDataPreprocessor renders the marked samples in one forward; a real mmseg Runner
trains with it."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from dpsims_aug.data.writers import write_ade20k
from dpsims_aug.mm.batch_synthesis import DPSIMSDataPreprocessor, DPSIMSSelect, synthesis_size
from dpsims_aug.mm.transforms import DPSIMSAugment
from dpsims_aug.synthesis import Synthesizer, default_checkpoint_path

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def _results(i: int, rng: np.random.Generator) -> dict:
    gt = rng.integers(0, 10, size=(64, 64)).astype(np.uint8)  # after reduce_zero_label: 0..9 (+255)
    gt[:4] = 255
    return dict(img=np.zeros((64, 64, 3), np.uint8), gt_seg_map=gt, seg_map_path=f"ann/scene_{i % 5}.png",
                reduce_zero_label=True)


def test_select_makes_the_online_transforms_draws_and_labels(monkeypatch):
    seeds = []
    monkeypatch.setattr(DPSIMSAugment, "_synthesize", lambda self, results, seed: seeds.append(seed) or
                        np.zeros((64, 64, 3), np.uint8))
    online, select = DPSIMSAugment(prob=0.5, seed=3), DPSIMSSelect(prob=0.5, seed=3)
    rng = np.random.default_rng(0)
    marked = []
    for i in range(20):  # 5 label maps, 4 visits each: the visit counters matter
        sample = _results(i, rng)
        online_out = online.transform(copy.deepcopy(sample))
        out = select.transform(copy.deepcopy(sample))
        assert out["dpsims_augmented"] == online_out["dpsims_augmented"]
        if out["dpsims_augmented"]:
            marked.append(out["dpsims_seed"])
            np.testing.assert_array_equal(out["dpsims_labels"], online.model_labels(sample))
        else:
            assert out["dpsims_seed"] == -1 and out["dpsims_labels"] is None
        np.testing.assert_array_equal(out["img"], sample["img"])  # the worker never renders
    assert marked == seeds and 0 < len(marked) < 20


def test_preprocessor_renders_what_the_synthesizer_renders_and_leaves_labels():
    synth = Synthesizer.from_checkpoint(default_checkpoint_path())
    h, w = tuple(synth.config.image_size)
    pre = DPSIMSDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True, seg_pad_val=255, size=(h, w))
    assert synthesis_size(h, w, (h, w), synth.stride) == (h, w)  # no resize at the training size
    assert synthesis_size(4 * h, 4 * w, (h, w), synth.stride) == (h, w)  # larger maps: about the training area
    rng = np.random.default_rng(1)
    labels = [rng.integers(0, synth.label_space.num_classes, size=(h, w)).astype(np.uint8) for _ in range(3)]
    samples, inputs = [], []
    for i, lab in enumerate(labels):
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.as_tensor(lab[None]).long()))
        sample.set_metainfo(dict(dpsims_seed=100 + i if i != 1 else -1, dpsims_labels=lab if i != 1 else None,
                                 img_shape=(h, w)))
        samples.append(sample)
        inputs.append(torch.full((3, h, w), 7, dtype=torch.uint8))
    out = pre(dict(inputs=inputs, data_samples=samples), training=True)
    assert pre.last_replaced == 2
    expected = synth.synthesize(np.stack([labels[0], labels[2]]), [100, 102])  # RGB uint8
    for got, want in zip(out["inputs"][[0, 2]], expected):
        rgb = got * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
        assert (rgb.round() - torch.as_tensor(want).permute(2, 0, 1).float()).abs().max() <= 1
    untouched = out["inputs"][1] * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    assert torch.allclose(untouched, torch.full_like(untouched, 7), atol=1e-3)
    for sample, lab in zip(out["data_samples"], labels):
        np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(), lab)  # labels untouched
    assert not any("generator" in k or "_synth" in k for k in pre.state_dict())  # no weights in the segmenter


def test_preprocessor_names_missing_labels_and_misplaced_select():
    pre = DPSIMSDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True, size=(64, 64))
    sample = SegDataSample(gt_sem_seg=PixelData(data=torch.zeros(1, 64, 64).long()))
    sample.set_metainfo(dict(dpsims_seed=5))
    with pytest.raises(KeyError, match="PACK_META_KEYS"):
        pre(dict(inputs=[torch.zeros(3, 64, 64, dtype=torch.uint8)], data_samples=[sample]), training=True)
    sample.set_metainfo(dict(dpsims_seed=5, dpsims_labels=np.zeros((32, 32), np.uint8)))
    with pytest.raises(ValueError, match="after every geometric transform"):
        pre(dict(inputs=[torch.zeros(3, 64, 64, dtype=torch.uint8)], data_samples=[sample]), training=True)


def test_a_real_mmseg_runner_trains_with_batched_synthesis(tmp_path):
    from mmengine.runner import Runner

    data = tmp_path / "data"
    write_ade20k(data, n_train=6, n_val=2, size=(64, 64), seed=0)
    cfg = Config.fromfile(str(REPO / "augment/embedded/fastscnn_embedded_batch.py"))
    cfg.train_dataloader.dataset.data_root = str(data)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = str(data)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.update(num_workers=0, persistent_workers=False)
    cfg.train_cfg.update(max_iters=3, val_interval=10)
    cfg.param_scheduler = []
    cfg.work_dir = str(tmp_path / "run")
    cfg.default_hooks.checkpoint.update(interval=3)
    runner = Runner.from_cfg(cfg)
    replaced = []
    original = runner.model.data_preprocessor.forward

    def spy(data, training=False):
        out = original(data, training)
        replaced.append(runner.model.data_preprocessor.last_replaced if training else None)
        return out

    runner.model.data_preprocessor.forward = spy
    runner.train()
    assert len([r for r in replaced if r is not None]) == 3 and sum(r for r in replaced if r) > 0
    state = torch.load(tmp_path / "run" / "iter_3.pth", map_location="cpu", weights_only=False)["state_dict"]
    assert not any("noise" in k or "_synth" in k for k in state)  # the generator is not part of the segmenter
