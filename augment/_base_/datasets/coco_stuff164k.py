# COCO-Stuff 164k (mmseg's COCOStuffDataset: 171 classes read from *_labelTrainIds.png), 512x512 crops.
# The DP-SIMS generator (train_gan/configs/coco_stuff.py) uses the 182 raw stuffthingmap ids (label space
# 'coco_stuff182'); classes are matched through their raw ids:
#   offline pool:  dpsims-aug generate --labels data/coco_stuff164k --dataset-format coco_stuff --split train --n 4 \
#                      --device cuda --checkpoint work_dirs/coco_stuff/generator_ema.safetensors
#                  (annotations there keep the raw 0..181 ids: MapLabelIds('coco_stuff171') maps them to the 171)
#   online:        DPSIMSAugment(label_space='coco_stuff171', contiguous_labels=True): the 171 train ids are
#                  contiguous ids of 'coco_stuff171', mapped to the generator's 182 classes by raw id.
#   Both read each map's COCO panoptic PNG, annotations/panoptic_{train,val}2017/<id>.png (the generator takes
#   instance edges; docs/recipe.md).
dataset_type = 'COCOStuffDataset'
data_root = 'data/coco_stuff164k'
pool_root = 'data/coco_stuff164k_dpsims'
dpsims_checkpoint = 'work_dirs/coco_stuff/generator_ema.safetensors'
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
pool_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='MapLabelIds', label_space='coco_stuff171'),
    *_augment,
]
online_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='DPSIMSAugment', checkpoint=dpsims_checkpoint, prob=0.5, device='cuda', seed=0,
         label_space='coco_stuff171', contiguous_labels=True),
    *_augment,
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
    data_prefix=dict(img_path='images/train2017', seg_map_path='annotations/train2017'),
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
        data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
