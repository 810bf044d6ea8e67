# The embedded procedural scenes, ADE-20K format: 10 classes, raw 0 = unlabeled, so reduce_zero_label=True.
# Metainfo and folders are those of dpsims_aug.data.mmseg_configs.mmseg_dataset_config(root, 'ade20k', split).
#   real data:       dpsims-aug dataset --dataset-format ade20k --out work_dirs/data/embedded --train 1000 --val 100 \
#                        --size 64
#   offline pool:    dpsims-aug generate --labels work_dirs/data/embedded --split train --n 4
#                    (writes work_dirs/data/embedded_dpsims; --checkpoint defaults to the bundled generator)
#   online:          DPSIMSAugment with the bundled generator (checkpoint=None) on the CPU, in the dataloader workers
# Three training sets are defined; a config picks one as train_dataloader.dataset:
#   real_train_dataset, pool_mix_dataset (real + pool), real_train_dataset with online_train_pipeline;
#   real_train_dataset with recolour_train_pipeline is the no-synthesis baseline.
dataset_type = 'BaseSegDataset'
data_root = 'work_dirs/data/embedded'
pool_root = 'work_dirs/data/embedded_dpsims'
dpsims_checkpoint = None  # None = the bundled embedded generator (dpsims_aug/assets/embedded_small.safetensors)
metainfo = dict(
    classes=('sky', 'cloud', 'mountain', 'water', 'sand', 'grass', 'tree', 'rock', 'building', 'road'),
    palette=[[112, 170, 235], [235, 235, 240], [120, 95, 80], [40, 90, 170], [225, 205, 140], [90, 170, 60],
             [25, 100, 40], [130, 130, 125], [190, 80, 60], [70, 70, 75]])
crop_size = (128, 128)
synthetic_share = 0.25  # share of synthetic samples in the pool mix (SyntheticMixDataset), 0..1; 0.25: README, study v3

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(1.0, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
# Online: the image of half the samples is replaced by a synthetic one for the same label map, right after loading
# (before resizing and cropping: synthesis runs at the label map's own 64x64 size).
online_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='DPSIMSAugment', checkpoint=dpsims_checkpoint, prob=0.5, device='cpu', seed=0),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(1.0, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
# No synthesis: each class of a real image gets its own brightness and tint (ClassRecolour, right after the label map
# is loaded); at 16 labelled images it gained more than a GAN trained on them (README, "What to expect").
recolour_train_pipeline = train_pipeline[:2] + [dict(type='ClassRecolour', strength=0.3, prob=0.5)] + train_pipeline[2:]
# Batch form (the GPU shape, also on the CPU): the workers only decide (DPSIMSSelect, the same draws as
# DPSIMSAugment online; last before packing, so it sees the final crop) and the model's DPSIMSDataPreprocessor
# renders the batch's replaced samples in one forward; the synthetic images skip PhotoMetricDistortion.
batch_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(1.0, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='DPSIMSSelect', checkpoint=dpsims_checkpoint, prob=0.5, seed=0),
    dict(type='PackSegInputs', meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                                          'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
                                          'dpsims_seed', 'dpsims_labels')),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]

real_train_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True,
    pipeline=train_pipeline)
# `generate` writes images/<split>/<name>_s<k>.jpg and annotations/<split>/<name>_s<k>.png (the same raw ids).
pool_train_dataset = dict(
    type=dataset_type,
    data_root=pool_root,
    metainfo=metainfo,
    data_prefix=dict(img_path='images', seg_map_path='annotations'),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True,
    pipeline=train_pipeline)
pool_mix_dataset = dict(
    _delete_=True,
    type='SyntheticMixDataset',
    real=real_train_dataset,
    synthetic=pool_train_dataset,
    synthetic_share=synthetic_share)

train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,  # DPSIMSAugment's per-sample visit counters live in the workers
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=real_train_dataset)
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
