# Fast-SCNN on the embedded scenes: real images, half of them replaced by synthetic ones rendered in the model's
# data preprocessor (DPSIMSDataPreprocessor: one generator, one forward per batch; bf16 on CUDA), the form a GPU
# user wants. The dataloader workers only decide which samples (DPSIMSSelect, DPSIMSAugment's draws).
_base_ = ['./fastscnn_embedded_real.py']
dpsims_checkpoint = None  # None = the bundled embedded generator; the same file in the pipeline and the preprocessor
custom_imports = dict(imports=['dpsims_aug.mm', 'dpsims_aug.mm.batch_synthesis'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(pipeline={{_base_.batch_train_pipeline}}))
model = dict(data_preprocessor=dict(type='DPSIMSDataPreprocessor', checkpoint=dpsims_checkpoint))
