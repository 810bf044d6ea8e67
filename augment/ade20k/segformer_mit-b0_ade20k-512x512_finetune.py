# SegFormer MiT-B0 on ADE-20K, two-stage schedule, stage 2 of 2: fine-tune stage 1's model
# (segformer_mit-b0_ade20k-512x512_pretrain.py, written by mmseg's tools/train.py to work_dirs/<config name>/)
# on the real images only: 40k iterations, no warm-up, a fifth of the learning rate.
_base_ = ['./segformer_mit-b0_ade20k-512x512_real.py']
load_from = 'work_dirs/segformer_mit-b0_ade20k-512x512_pretrain/iter_160000.pth'
optim_wrapper = dict(optimizer=dict(lr=0.000012))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0, end=40000, by_epoch=False)]
train_cfg = dict(max_iters=40000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
