# DeepLabV3+ R-50-D8 (ImageNet-pretrained ResNet-50-V1c) on Cityscapes, real images only (baseline). 4 GPUs x batch 2:
#   torchrun --nproc_per_node=4 <mmseg>/tools/train.py \
#       augment/cityscapes/deeplabv3plus_r50-d8_cityscapes-512x1024_real.py --launcher pytorch
_base_ = [
    '../_base_/models/deeplabv3plus_r50-d8.py', '../_base_/datasets/cityscapes.py', '../_base_/default_runtime.py',
    '../_base_/schedules/sgd_80k.py'
]
crop_size = (512, 1024)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19))
train_dataloader = dict(batch_size=2)
