# Fast-SCNN on the embedded scenes: real images, half of them replaced on the fly by DPSIMSAugment (CPU, in the
# dataloader workers; fork is fine on the CPU).
_base_ = ['./fastscnn_embedded_real.py']
train_dataloader = dict(dataset=dict(pipeline={{_base_.online_train_pipeline}}))
