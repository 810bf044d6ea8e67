# DP-SIMS on ADE-20K at 256x256 (ADEChallengeData2016: images/ + annotations/{training,validation}).
# torchrun --nproc_per_node=8 -m train_gan.train train_gan/configs/ade20k.py --launcher pytorch
_base_ = ["./_base_/paper.py"]

data_root = "data/ADEChallengeData2016"
label_space = "ade20k"
crop_size = 256

model = dict(label_space=label_space, generator=dict(preset="ade20k"))
train_dataloader = dict(
    dataset=dict(type="SegPairDataset", data_root=data_root, label_space=label_space, crop_size=crop_size,
                 split="train", scale_range=(1.0, 1.0)),
)
