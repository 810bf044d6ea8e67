# ADE-20K (mmseg's ADE20KDataset folder format, 150 classes, reduce_zero_label=True), 512x512 crops.
#   offline pool:  dpsims-aug generate --labels data/ade/ADEChallengeData2016 --split train --n 4 --device cuda \
#                      --checkpoint work_dirs/ade20k/generator_ema.safetensors   (-> ..._dpsims next to the dataset)
#   online:        DPSIMSAugment on the GPU in every dataloader worker (configs using it start workers with 'spawn')
# A config picks one of real_train_dataset, pool_mix_dataset (real + pool) or the online pipeline.
dataset_type = 'ADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
pool_root = 'data/ade/ADEChallengeData2016_dpsims'
dpsims_checkpoint = 'work_dirs/ade20k/generator_ema.safetensors'  # train_gan/configs/ade20k.py's export
crop_size = (512, 512)
synthetic_share = 0.25  # share of synthetic samples in the pool mix (SyntheticMixDataset), 0..1; 0.25: README, study v3

_augment = [
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), *_augment]
# Synthesis at ~256x256 (the generator's resolution; size_policy='resize'), resized back to the image's size.
online_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='DPSIMSAugment', checkpoint=dpsims_checkpoint, prob=0.5, device='cuda', seed=0),
    *_augment,
]
# Batch (GPU) form: the workers only decide (DPSIMSSelect, last before packing: it sees the final crop); the model's
# DPSIMSDataPreprocessor renders the batch's replaced samples in one forward (configs using it set that
# preprocessor with the same checkpoint).
batch_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    *_augment[:-1],
    dict(type='DPSIMSSelect', checkpoint=dpsims_checkpoint, prob=0.5, seed=0),
    dict(type='PackSegInputs', meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                                          'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
                                          'dpsims_seed', 'dpsims_labels')),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]

real_train_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
    pipeline=train_pipeline)
# generate keeps ADE's raw annotation ids (hard links): the same dataset class reads the pool.
pool_train_dataset = dict(
    type=dataset_type,
    data_root=pool_root,
    data_prefix=dict(img_path='images', seg_map_path='annotations'),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    pipeline=train_pipeline)
pool_mix_dataset = dict(
    _delete_=True,
    type='SyntheticMixDataset',
    real=real_train_dataset,
    synthetic=pool_train_dataset,
    synthetic_share=synthetic_share)

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=real_train_dataset)
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
