# DP-SIMS on Cityscapes at 512x256 (35 labelIds as SPADE/OASIS; leftImg8bit/ + gtFine/ *_labelIds.png).
# torchrun --nproc_per_node=8 -m train_gan.train train_gan/configs/cityscapes.py --launcher pytorch
_base_ = ["./_base_/paper.py"]

data_root = "data/cityscapes"
label_space = "cityscapes"
crop_size = (256, 512)

# Instance-boundary input is not wired into the data pipeline yet: train without it.
model = dict(label_space=label_space, generator=dict(preset="cityscapes", use_instance_edges=False))
train_dataloader = dict(
    dataset=dict(type="SegPairDataset", data_root=data_root, label_space=label_space, crop_size=crop_size,
                 split="train", scale_range=(1.0, 1.0)),
)
