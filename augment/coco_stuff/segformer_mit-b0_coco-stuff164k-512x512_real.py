# SegFormer MiT-B0 (ImageNet-pretrained backbone) on COCO-Stuff 164k, real images only (baseline). 8 GPUs x batch 2:
#   torchrun --nproc_per_node=8 <mmseg>/tools/train.py \
#       augment/coco_stuff/segformer_mit-b0_coco-stuff164k-512x512_real.py --launcher pytorch
_base_ = [
    '../_base_/models/segformer_mit-b0.py', '../_base_/datasets/coco_stuff164k.py', '../_base_/default_runtime.py',
    '../_base_/schedules/adamw_160k.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=171))
train_dataloader = dict(batch_size=2)
