# SegFormer MiT-B2 (ImageNet-pretrained backbone) on Cityscapes, real images only (baseline). 8 GPUs x batch 1:
#   torchrun --nproc_per_node=8 <mmseg>/tools/train.py \
#       augment/cityscapes/segformer_mit-b2_cityscapes-512x1024_real.py --launcher pytorch
_base_ = [
    '../_base_/models/segformer_mit-b2.py', '../_base_/datasets/cityscapes.py', '../_base_/default_runtime.py',
    '../_base_/schedules/adamw_160k.py'
]
crop_size = (512, 1024)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=19),
    test_cfg=dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768)))
train_dataloader = dict(batch_size=1)
