# DeepLabV3+ R-50-D8 (ImageNet-pretrained ResNet-50-V1c) on COCO-Stuff 164k:
# real images, half of them replaced on the fly by DPSIMSAugment on the GPU.
# Each dataloader worker loads its own generator; CUDA cannot be used in workers forked from the CUDA-initialized
# trainer, so workers are started with 'spawn'.
_base_ = ['./deeplabv3plus_r50-d8_coco-stuff164k-512x512_real.py']
env_cfg = dict(mp_cfg=dict(mp_start_method='spawn'))
train_dataloader = dict(dataset=dict(pipeline={{_base_.online_train_pipeline}}))
