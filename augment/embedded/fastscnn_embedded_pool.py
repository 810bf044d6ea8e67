# Fast-SCNN on the embedded scenes: real images + the offline synthetic pool written by
#   dpsims-aug generate --labels work_dirs/data/embedded --split train --n 4
# mixed by a ConcatDataset of RepeatDatasets (ratio: real_repeat / pool_repeat in the dataset base).
_base_ = ['./fastscnn_embedded_real.py']
train_dataloader = dict(dataset={{_base_.pool_mix_dataset}})
