# DeepLabV3+ R-50-D8 (ImageNet-pretrained ResNet-50-V1c) on COCO-Stuff 164k:
# real images + the offline DP-SIMS pool (`dpsims-aug generate`, see the dataset base),
# mixed by SyntheticMixDataset (synthetic_share in the dataset base: 0.5 = half the samples synthetic).
_base_ = ['./deeplabv3plus_r50-d8_coco-stuff164k-512x512_real.py']
train_dataloader = dict(dataset={{_base_.pool_mix_dataset}})
