# Fast-SCNN on the embedded scenes: real images + the offline synthetic pool written by
#   dpsims-aug generate --labels work_dirs/data/embedded --split train --n 4
# mixed by SyntheticMixDataset (synthetic_share in the dataset base: 0.5 = half the samples synthetic).
_base_ = ['./fastscnn_embedded_real.py']
train_dataloader = dict(dataset={{_base_.pool_mix_dataset}})
