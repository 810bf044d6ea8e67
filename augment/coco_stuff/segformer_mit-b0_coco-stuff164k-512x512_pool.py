# SegFormer MiT-B0 (ImageNet-pretrained backbone) on COCO-Stuff 164k:
# real images + the offline DP-SIMS pool (`dpsims-aug generate`, see the dataset base),
# mixed by a ConcatDataset of RepeatDatasets (real_repeat : pool_repeat in the dataset base).
_base_ = ['./segformer_mit-b0_coco-stuff164k-512x512_real.py']
train_dataloader = dict(dataset={{_base_.pool_mix_dataset}})
