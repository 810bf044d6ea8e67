# SegFormer MiT-B2 (ImageNet-pretrained backbone) on ADE-20K, real images only (baseline). 8 GPUs x batch 2:
#   torchrun --nproc_per_node=8 <mmseg>/tools/train.py \
#       augment/ade20k/segformer_mit-b2_ade20k-512x512_real.py --launcher pytorch
_base_ = [
    '../_base_/models/segformer_mit-b2.py', '../_base_/datasets/ade20k.py', '../_base_/default_runtime.py',
    '../_base_/schedules/adamw_160k.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=150))
train_dataloader = dict(batch_size=2)
