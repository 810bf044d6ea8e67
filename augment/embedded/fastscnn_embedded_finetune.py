# Two-stage schedule, stage 2 of 2: fine-tune the model of fastscnn_embedded_pretrain.py on the real images only,
# a quarter of the iterations at a fifth of the learning rate. Run stage 1 first (mmseg's tools/train.py writes it to
# work_dirs/fastscnn_embedded_pretrain/).
_base_ = ['./fastscnn_embedded_real.py']
load_from = 'work_dirs/fastscnn_embedded_pretrain/iter_2000.pth'
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=500, by_epoch=False)]
train_cfg = dict(max_iters=500, val_interval=250)
default_hooks = dict(checkpoint=dict(interval=250))
