# Two-stage schedule, stage 1 of 2: Fast-SCNN pretrained on real + synthetic images (the offline pool, as in
# fastscnn_embedded_pool.py, but a larger synthetic share), then fine-tuned on the real images alone by
# fastscnn_embedded_finetune.py, which starts from this run's last checkpoint.
_base_ = ['./fastscnn_embedded_real.py']
train_dataloader = dict(dataset=dict(
    type='SyntheticMixDataset', real={{_base_.real_train_dataset}}, synthetic={{_base_.pool_train_dataset}},
    synthetic_share=0.75, _delete_=True))
