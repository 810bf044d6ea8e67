# SegFormer MiT-B0 on ADE-20K, two-stage schedule, stage 1 of 2: pretrain on real + the offline DP-SIMS pool with
# a larger synthetic share than the pool config; segformer_mit-b0_ade20k-512x512_finetune.py continues from it on
# the real images alone.
_base_ = ['./segformer_mit-b0_ade20k-512x512_real.py']
train_dataloader = dict(dataset=dict(
    type='SyntheticMixDataset', real={{_base_.real_train_dataset}}, synthetic={{_base_.pool_train_dataset}},
    synthetic_share=0.75, _delete_=True))
