"""`dpsims-aug evaluate`, the mmseg segmenter wrapper (safe checkpoint loading) and the trainer's evaluation hook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import tiny_generator_checkpoint

from dpsims_aug.cli import main
from dpsims_aug.data.writers import write_dataset
from dpsims_aug.mm.checkpoints import load_mmengine_checkpoint
from dpsims_aug.mm.segmenter import Segmenter

# A tiny Fast-SCNN with the embedded set's 10 classes; complete (no mmseg:: base configs: the mmseg fork
# in the pinned environment cannot resolve them).
SEGMENTER_CONFIG = """
norm_cfg = dict(type='BN', requires_grad=True)
default_scope = 'mmseg'
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=None),
    backbone=dict(type='FastSCNN', downsample_dw_channels=(8, 16), global_in_channels=16,
                  global_block_channels=(16, 16, 32), global_block_strides=(2, 2, 1), global_out_channels=32,
                  higher_in_channels=16, lower_in_channels=32, fusion_out_channels=32, out_indices=(0, 1, 2),
                  norm_cfg=norm_cfg, align_corners=False, init_cfg=None),
    decode_head=dict(type='DepthwiseSeparableFCNHead', in_channels=32, channels=32, concat_input=False,
                     num_classes=10, in_index=-1, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> SimpleNamespace:
    """A 64x64 ADE-20K-format dataset, a random tiny generator and a random tiny segmenter saved like mmengine does."""
    from mmengine.logging import MessageHub

    root = tmp_path_factory.mktemp("evaluate")
    write_dataset(root / "data", "ade20k", n_train=4, n_val=6, size=(64, 64))
    tiny_generator_checkpoint(root / "g.safetensors")  # 10 classes: the embedded set's
    config = root / "fastscnn_tiny.py"
    config.write_text(SEGMENTER_CONFIG)
    segmenter = Segmenter.from_files(config, None)
    # What mmengine's Runner writes: meta, weights and the message hub with numpy-backed HistoryBuffers.
    hub = MessageHub.get_instance("test_evaluate")
    hub.update_scalar("train/loss", 1.25)
    hub.update_scalar("train/loss", np.float32(0.5))
    checkpoint = root / "iter_1.pth"
    torch.save({"meta": {"iter": 1, "seed": np.int64(3), "dataset_meta": {"classes": tuple("abcdefghij")}},
                "state_dict": segmenter.model.state_dict(), "message_hub": hub.state_dict()}, checkpoint)
    return SimpleNamespace(root=root, data=root / "data", generator=root / "g.safetensors", config=config,
                           checkpoint=checkpoint, segmenter=segmenter)


def test_mmengine_checkpoint_loads_safely(setup, tmp_path):
    from mmengine.logging import HistoryBuffer

    # A fresh process with the plain safe loader refuses mmengine's pickled HistoryBuffer ...
    plain = subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(setup.checkpoint)!r}, "
                            "weights_only=True)"], capture_output=True, text=True)
    assert plain.returncode != 0 and "UnpicklingError" in plain.stderr
    # ... ours reads it with weights_only=True: exactly mmengine's classes allowed, real HistoryBuffers back.
    ckpt = load_mmengine_checkpoint(setup.checkpoint)
    reference = setup.segmenter.model.state_dict()
    assert all(torch.equal(ckpt["state_dict"][k], reference[k]) for k in reference)
    history = ckpt["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(history, HistoryBuffer) and history.mean() == pytest.approx(0.875)
    # Anything else that needs code to unpickle is still refused.
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"path": Path("/etc")}}, evil)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_mmengine_checkpoint(evil)
    # getattr is only HistoryBuffer's statistics: a pickle that asks for anything else through it is refused.
    class Sneaky:
        def __reduce__(self):
            return getattr, (HistoryBuffer, "__init__")

    sneaky = tmp_path / "sneaky.pth"
    torch.save({"state_dict": {}, "f": Sneaky()}, sneaky)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_mmengine_checkpoint(sneaky)


def test_segmenter_restores_weights_and_predicts_at_image_size(setup):
    segmenter = Segmenter.from_files(setup.config, setup.checkpoint)
    assert segmenter.model.dataset_meta["classes"] == tuple("abcdefghij")
    reference = setup.segmenter.model.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in segmenter.model.state_dict().items())
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)]
    preds = segmenter.predict(images)
    assert [p.shape for p in preds] == [(64, 64), (48, 80)]
    assert all(p.min() >= 0 and p.max() < 10 for p in preds)


def test_evaluate_cli_writes_metrics_and_reuses_the_fid_cache(setup, tmp_path, capsys):
    args = ["evaluate", "--checkpoint", str(setup.generator), "--data", str(setup.data), "--split", "val",
            "--n-seeds", "2", "--max-images", "4", "--segmenter-config", str(setup.config),
            "--segmenter-checkpoint", str(setup.checkpoint), "--cache-dir", str(tmp_path / "cache"),
            "--batch-size", "4", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a.json")]) == 0
    assert "FID" in capsys.readouterr().out
    first = json.loads((tmp_path / "a.json").read_text())
    metrics = first["metrics"]
    assert set(metrics) >= {"fid", "miou_fake", "miou_real", "miou_ratio", "diversity_pixel_l1",
                            "diversity_feature_cosine", "kid", "kid_floor", "fid_floor", "fid_matched",
                            "colour_class_distance", "contrast_ratio", "clipped_white_ratio", "clipped_black_ratio"}
    assert metrics["floor_num_images"] == 2  # 4 real images split in halves
    # At equal sample counts (fid_matched vs the real-vs-real floor) and with the unbiased KID, an untrained
    # generator is clearly farther from the real images than they are from each other.
    assert metrics["fid_matched"] > metrics["fid_floor"] and metrics["kid"] > 10 * max(metrics["kid_floor"], 1e-3)
    assert metrics["fid_num_fake"] == 8 and metrics["fid_num_real"] == 4
    assert 0 <= metrics["miou_fake"] <= 100 and metrics["diversity_pixel_l1"] > 0
    assert first["info"]["label_maps"] == 4 and not first["info"]["fid_reference_cached"]
    # Same seeds, cached reference: the same numbers.
    assert main([*args, "--out", str(tmp_path / "b.json")]) == 0
    second = json.loads((tmp_path / "b.json").read_text())
    assert second["info"]["fid_reference_cached"]
    assert second["metrics"] == pytest.approx(metrics, rel=1e-9)


def test_evaluate_cli_errors(setup, tmp_path, capsys):
    base = ["evaluate", "--checkpoint", str(setup.generator), "--data", str(setup.data), "--no-progress"]
    assert main([*base, "--segmenter-config", str(setup.config)]) == 2
    assert "segmenter" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.safetensors"), "--data", str(setup.data)]) == 2


class _Visualizer:
    def __init__(self) -> None:
        self.scalars: list[tuple[dict, int]] = []

    def add_scalars(self, scalars: dict, step: int = 0, **kwargs) -> None:
        self.scalars.append((scalars, step))


def test_gan_evaluation_hook_logs_fid_and_miou(setup, tmp_path):
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.registry import HOOKS, MODELS

    import train_gan  # noqa: F401  (registers the model and hooks)

    model = MODELS.build(dict(
        type="DPSIMSGAN", label_space="embedded", generator=dict(preset="tiny"),
        discriminator=dict(decoder_channels=8, max_decoder_channels=16, high_res_channels=8),
        loss=dict(nce_patches=16),
    ))
    hook = HOOKS.build(dict(
        type="GANEvaluationHook", interval=2, num_images=4, num_seeds=1, batch_size=4,
        segmenter_config=str(setup.config), segmenter_checkpoint=str(setup.checkpoint),
        dataset=dict(type="SegPairDataset", data_root=str(setup.data), label_space="embedded", crop_size=64,
                     split="val", flip=False),
    ))
    from mmengine.registry import DATASETS

    train_set = DATASETS.build(dict(type="SegPairDataset", data_root=str(setup.data), label_space="embedded",
                                    crop_size=64, split="train"))
    runner = SimpleNamespace(model=model, iter=0, max_iters=4, train_loop=SimpleNamespace(max_iters=4),
                             log_dir=str(tmp_path), message_hub=MessageHub.get_instance("hook_test"),
                             visualizer=_Visualizer(), logger=MMLogger.get_instance("hook_test"),
                             train_dataloader=SimpleNamespace(dataset=train_set, batch_size=2))
    hook.after_train_iter(runner, 0)  # iteration 1: not due
    assert not (tmp_path / "metrics.jsonl").exists()
    runner.iter = 1
    hook.after_train_iter(runner, 1)
    runner.iter = 3
    hook.after_train_iter(runner, 3)  # last iteration
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records] == [2, 4]
    assert all(r["kid"] > 10 * max(r["kid_floor"], 1e-3) and 0 <= r["miou_fake"] <= 100 and "miou_ratio" in r
               for r in records)
    # KID with its real-vs-real floor and the colour statistics come with every evaluation.
    assert all({"kid", "kid_floor", "fid_floor", "fid_matched", "colour_class_distance", "contrast_ratio",
                "clipped_white_ratio"} <= set(r) for r in records)
    assert model.ema_calibrated_step == int(model.step)  # EMA BatchNorm statistics re-collected first
    # The model did not change between the evaluations and the seeds are fixed: identical values.
    assert records[0]["fid"] == pytest.approx(records[1]["fid"], rel=1e-9)
    assert runner.message_hub.get_scalar("val/fid").current() == pytest.approx(records[1]["fid"])
    assert [step for _, step in runner.visualizer.scalars] == [2, 4]
    assert "val/miou_real" in runner.visualizer.scalars[0][0]


def test_tstr_trains_on_generated_images_and_reuses_the_real_reference(setup, tmp_path):
    """TSTR through real mmseg: a Fast-SCNN on generated images of training maps vs on their real images."""
    from dpsims_aug.metrics.tstr import train_on_synthetic_test_on_real

    repo = Path(__file__).resolve().parents[1]
    config = repo / "augment" / "embedded" / "fastscnn_embedded_real.py"
    out = train_on_synthetic_test_on_real(setup.generator, setup.data, config, tmp_path / "tstr", max_train_maps=4,
                                          iters=2)
    assert set(out) == {"tstr_miou_synthetic", "tstr_miou_real", "tstr_ratio"}
    assert 0 <= out["tstr_miou_synthetic"] <= 100 and 0 <= out["tstr_miou_real"] <= 100
    if out["tstr_miou_real"] > 0:
        assert out["tstr_ratio"] == pytest.approx(out["tstr_miou_synthetic"] / out["tstr_miou_real"])
    real_record = tmp_path / "tstr" / "real" / "result.json"
    pool = next((tmp_path / "tstr").glob("synthetic_*/pool"))
    assert len(list((pool / "images").rglob("*.jpg"))) == 4  # one generated image per training label map
    stamp = real_record.stat().st_mtime_ns
    again = train_on_synthetic_test_on_real(setup.generator, setup.data, config, tmp_path / "tstr",
                                            max_train_maps=4, iters=2)
    assert again == out and real_record.stat().st_mtime_ns == stamp  # both runs reused, nothing retrained
    pool_config = repo / "augment" / "embedded" / "fastscnn_embedded_pool.py"
    with pytest.raises(ValueError, match="fastscnn_embedded_pool.py: TSTR needs a plain"):
        train_on_synthetic_test_on_real(setup.generator, setup.data, pool_config, tmp_path / "other",
                                        max_train_maps=4, iters=2)
