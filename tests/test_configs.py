"""Every shipped training config loads with mmengine and describes a consistent model."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from dpsims_aug.labels import get_label_space
from dpsims_aug.models import generator_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "train_gan" / "configs").glob("*.py"))


def test_configs_exist():
    assert {p.stem for p in CONFIGS} >= {"ade20k", "coco_stuff", "cityscapes", "embedded_small"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_is_consistent(path):
    cfg = Config.fromfile(path)
    model = cfg.model
    assert model.type == "DPSIMSGAN"
    space = get_label_space(model.label_space)
    generator = dict(model.generator)
    g_cfg = generator_config(generator.pop("preset"), num_classes=space.num_classes, **generator)
    crop = cfg.train_dataloader.dataset.crop_size
    h, w = (crop, crop) if isinstance(crop, int) else crop
    assert h % g_cfg.stride == 0 and w % g_cfg.stride == 0
    assert cfg.train_dataloader.dataset.label_space == model.label_space
    assert cfg.optim_wrapper.constructor == "PerModuleOptimWrapperConstructor"
    assert {"generator", "discriminator"} <= set(cfg.optim_wrapper)
    hooks = {h["type"] for h in cfg.custom_hooks}
    assert {"GANCheckpointHook", "SampleGridHook", "ExportGeneratorHook"} <= hooks


def test_paper_configs_evaluate_fid():
    for path in CONFIGS:
        if not path.stem.startswith("embedded_"):
            assert "GANEvaluationHook" in {h["type"] for h in Config.fromfile(path).custom_hooks}, path.stem


def test_paper_resolutions():
    by_name = {p.stem: Config.fromfile(p) for p in CONFIGS}
    assert by_name["ade20k"].train_dataloader.dataset.crop_size == 256
    assert by_name["coco_stuff"].train_dataloader.dataset.crop_size == 256
    assert tuple(by_name["cityscapes"].train_dataloader.dataset.crop_size) == (256, 512)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_configs_checkpoint_by_time_as_well(path):
    """A stopped run loses minutes, not hours: every config saves at least every 30 minutes (issue 26)."""
    from mmengine.registry import HOOKS

    cfg = Config.fromfile(path)  # custom_imports registers TimedCheckpointHook
    checkpoint = cfg.default_hooks.checkpoint
    assert checkpoint.type == "TimedCheckpointHook" and 0 < checkpoint.minutes <= 30
    assert HOOKS.get("TimedCheckpointHook") is not None
