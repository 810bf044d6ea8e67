# Cityscapes (mmseg's CityscapesDataset: 19 classes read from *_gtFine_labelTrainIds.png), 512x1024 crops.
# The DP-SIMS generator (train_gan/configs/cityscapes.py) uses the 35 labelIds (label space 'cityscapes'):
#   offline pool:  dpsims-aug generate --labels data/cityscapes --split train --n 4 --device cuda \
#                      --checkpoint work_dirs/cityscapes/generator_ema.safetensors
#                  (annotations there are labelIds: MapLabelIds('cityscapes19') maps them to the 19 train ids)
#   online:        DPSIMSAugment(label_space='cityscapes19', contiguous_labels=True): train ids -> labelIds.
#                  The generator runs at ~256x512 (size_policy='resize'); images are upsampled to 1024x2048.
#   Both read each map's *_gtFine_instanceIds.png (the generator takes instance edges; docs/recipe.md).
dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes/'
pool_root = 'data/cityscapes_dpsims'
dpsims_checkpoint = 'work_dirs/cityscapes/generator_ema.safetensors'
crop_size = (512, 1024)
synthetic_share = 0.25  # share of synthetic samples in the pool mix (SyntheticMixDataset), 0..1; 0.25: README, study v3

_augment = [
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), *_augment]
pool_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='MapLabelIds', label_space='cityscapes19'),
    *_augment,
]
online_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='DPSIMSAugment', checkpoint=dpsims_checkpoint, prob=0.5, device='cuda', seed=0,
         label_space='cityscapes19', contiguous_labels=True),
    *_augment,
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]

real_train_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
    pipeline=train_pipeline)
pool_train_dataset = dict(
    type=dataset_type,
    data_root=pool_root,
    data_prefix=dict(img_path='images', seg_map_path='annotations'),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    pipeline=pool_train_pipeline)
pool_mix_dataset = dict(
    _delete_=True,
    type='SyntheticMixDataset',
    real=real_train_dataset,
    synthetic=pool_train_dataset,
    synthetic_share=synthetic_share)

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
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
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
