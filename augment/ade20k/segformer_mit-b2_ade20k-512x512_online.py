# SegFormer MiT-B2 (ImageNet-pretrained backbone) on ADE-20K:
# real images, half of them replaced on the fly by DPSIMSAugment on the GPU.
# Each dataloader worker loads its own generator; CUDA cannot be used in workers forked from the CUDA-initialized
# trainer, so workers are started with 'spawn'.
_base_ = ['./segformer_mit-b2_ade20k-512x512_real.py']
env_cfg = dict(mp_cfg=dict(mp_start_method='spawn'))
train_dataloader = dict(dataset=dict(pipeline={{_base_.online_train_pipeline}}))
