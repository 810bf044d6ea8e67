# SegFormer MiT-B0 (ImageNet-pretrained backbone) on COCO-Stuff 164k:
# real images + the offline DP-SIMS pool (`dpsims-aug generate`, see the dataset base),
# mixed by SyntheticMixDataset (synthetic_share in the dataset base: 0.5 = half the samples synthetic).
_base_ = ['./segformer_mit-b0_coco-stuff164k-512x512_real.py']
train_dataloader = dict(dataset={{_base_.pool_mix_dataset}})
