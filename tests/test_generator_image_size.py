"""The generator's image_size is the resolution it was trained at: the trainer takes it from the training crop,
exports carry it, and the batch preprocessor renders the bundled model there."""

from __future__ import annotations

import pytest

from dpsims_aug.checkpoint import load_generator_checkpoint
from dpsims_aug.mm.batch_synthesis import synthesis_size
from dpsims_aug.synthesis import default_checkpoint_path
from train_gan.train import build_config, parse_args


@pytest.mark.parametrize("config, size", [("embedded_small", (64, 64)), ("ade20k", (256, 256)),
                                          ("cityscapes", (256, 512)), ("coco_stuff", (256, 256))])
def test_the_generator_is_sized_by_the_training_crop(config, size):
    cfg = build_config(parse_args([config]))
    assert tuple(cfg.model.generator.image_size) == size


def test_an_explicit_image_size_wins():
    cfg = build_config(parse_args(["embedded_small", "--cfg-options", "model.generator.image_size=[96,96]"]))
    assert tuple(cfg.model.generator.image_size) == (96, 96)


def test_the_bundled_model_records_its_training_crop_and_is_rendered_there():
    cfg = build_config(parse_args(["embedded_small"]))
    bundled = load_generator_checkpoint(default_checkpoint_path(), weights=False)
    assert tuple(bundled.generator_config["image_size"]) == tuple(cfg.model.generator.image_size) == (64, 64)
    # A 128x128 crop of an upscaled embedded map is rendered at the 64x64 the model learned, then resized back.
    assert synthesis_size(128, 128, (64, 64), 32) == (64, 64)
