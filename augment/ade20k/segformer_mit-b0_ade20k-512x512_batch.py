# SegFormer MiT-B0 on ADE-20K: real images, half of them replaced by synthetic ones rendered on the GPU in the
# model's data preprocessor (DPSIMSDataPreprocessor: one generator per GPU, one bf16 forward per batch). The
# dataloader workers only decide which samples (DPSIMSSelect), so they need no GPU and no 'spawn'.
_base_ = ['./segformer_mit-b0_ade20k-512x512_real.py']
dpsims_checkpoint = 'work_dirs/ade20k/generator_ema.safetensors'  # train_gan/configs/ade20k.py's export
custom_imports = dict(imports=['dpsims_aug.mm', 'dpsims_aug.mm.batch_synthesis'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(pipeline={{_base_.batch_train_pipeline}}))
model = dict(data_preprocessor=dict(type='DPSIMSDataPreprocessor', checkpoint=dpsims_checkpoint))
