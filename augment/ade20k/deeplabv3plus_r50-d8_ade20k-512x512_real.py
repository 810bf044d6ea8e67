# DeepLabV3+ R-50-D8 (ImageNet-pretrained ResNet-50-V1c) on ADE-20K, real images only (baseline). 4 GPUs x batch 4:
#   torchrun --nproc_per_node=4 <mmseg>/tools/train.py \
#       augment/ade20k/deeplabv3plus_r50-d8_ade20k-512x512_real.py --launcher pytorch
_base_ = [
    '../_base_/models/deeplabv3plus_r50-d8.py', '../_base_/datasets/ade20k.py', '../_base_/default_runtime.py',
    '../_base_/schedules/sgd_160k.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
train_dataloader = dict(batch_size=4)
