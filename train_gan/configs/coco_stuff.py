# DP-SIMS on COCO-Stuff (stuffthingmaps, 182 raw ids) at 256x256.
# Layout: images/{train2017,val2017}/*.jpg + annotations/{train2017,val2017}/*.png (stuffthingmaps).
# torchrun --nproc_per_node=8 -m train_gan.train train_gan/configs/coco_stuff.py --launcher pytorch
_base_ = ["./_base_/paper.py"]

data_root = "data/coco_stuff164k"
label_space = "coco_stuff182"
crop_size = 256

# Instance-boundary input is not wired into the data pipeline yet: train without it.
model = dict(label_space=label_space, generator=dict(preset="coco_stuff", use_instance_edges=False))
train_dataloader = dict(
    dataset=dict(type="SegPairDataset", data_root=data_root, label_space=label_space, crop_size=crop_size,
                 split="train", scale_range=(1.0, 1.0)),
)
