"""A stock mmseg config (mmengine's own CheckpointHook, no hook of ours) that loads the transform through
custom_imports: trains with 2 dataloader workers, resumes and is read by mmseg's init_model, all with torch.load's
weights_only=True default (each step in a fresh process, as a user runs them)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mmseg")

from conftest import tiny_generator_checkpoint  # noqa: E402

from dpsims_aug.data.writers import write_dataset  # noqa: E402

CONFIG = """
custom_imports = dict(imports=['dpsims_aug.mm'], allow_failed_imports=False)
default_scope = 'mmseg'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(64, 64)),
    backbone=dict(type='FastSCNN', downsample_dw_channels=(8, 16), global_in_channels=16,
                  global_block_channels=(16, 16, 32), global_block_strides=(2, 2, 1), global_out_channels=32,
                  higher_in_channels=16, lower_in_channels=32, fusion_out_channels=32, out_indices=(0, 1, 2),
                  norm_cfg=norm_cfg, align_corners=False),
    decode_head=dict(type='DepthwiseSeparableFCNHead', in_channels=32, channels=32, concat_input=False,
                     num_classes=10, in_index=-1, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='BaseSegDataset', data_root={data!r}, reduce_zero_label=True,
        metainfo=dict(classes=('sky', 'cloud', 'mountain', 'water', 'sand', 'grass', 'tree', 'rock', 'building',
                               'road')),
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        img_suffix='.jpg', seg_map_suffix='.png',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='DPSIMSAugment', checkpoint={ckpt!r}, prob=0.5),
                  dict(type='RandomCrop', crop_size=(64, 64)), dict(type='PackSegInputs')]))
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=1000)
default_hooks = dict(
    timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
log_level = 'WARNING'
work_dir = {work!r}
"""


def _python(code: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_stock_config_trains_resumes_and_init_model_reads_it(tmp_path):
    write_dataset(tmp_path / "data", "ade20k", n_train=4, n_val=1, size=(64, 64))
    tiny_generator_checkpoint(tmp_path / "g.safetensors")  # 10 classes: the embedded set's
    config = tmp_path / "stock_fastscnn.py"
    config.write_text(CONFIG.format(data=str(tmp_path / "data"), ckpt=str(tmp_path / "g.safetensors"),
                                    work=str(tmp_path / "work")))
    train = f"""
        from mmengine.config import Config
        from mmengine.runner import Runner
        cfg = Config.fromfile({str(config)!r})
        cfg.train_cfg.max_iters = {{iters}}
        cfg.resume = {{resume}}
        runner = Runner.from_cfg(cfg)
        runner.train()
        print('iter', runner.iter, 'losses', len(runner.message_hub.get_scalar('train/loss').data[0]))
    """
    assert "iter 4" in _python(train.format(iters=4, resume=False), tmp_path)
    # Resume in a new process: mmengine's CheckpointHook wrote pickled HistoryBuffers and numpy objects.
    out = _python(train.format(iters=6, resume=True), tmp_path)
    assert "iter 6 losses 6" in out  # resumed at 4 with the loss history of the first run
    out = _python(f"""
        import dpsims_aug  # an OpenMMLab program that imports the toolkit
        from mmseg.apis import init_model
        model = init_model({str(config)!r}, {str(tmp_path / "work" / "iter_6.pth")!r}, device='cpu')
        print('classes', len(model.dataset_meta['classes']))
    """, tmp_path)
    assert "classes 10" in out
