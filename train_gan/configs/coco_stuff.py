# DP-SIMS on COCO-Stuff (stuffthingmaps, 182 raw ids) at 256x256.
# Dataset format: images/{train2017,val2017}/*.jpg + annotations/{train2017,val2017}/*.png (stuffthingmaps).
# torchrun --nproc_per_node=8 -m train_gan.train train_gan/configs/coco_stuff.py --launcher pytorch
_base_ = ["./_base_/paper.py"]

data_root = "data/coco_stuff164k"
label_space = "coco_stuff182"
crop_size = 256

# Instance boundaries as an extra input (SPADE/OASIS), from COCO's panoptic PNGs (panoptic_annotations_trainval2017,
# segment id = R + 256 G + 256^2 B): annotations/panoptic_{train,val}2017/<image id>.png, found beside the split
# folders of the stuffthingmaps (also <data_root>/panoptic_{train,val}2017/). Elsewhere: --cfg-options
# train_dataloader.dataset.instance_dir=DIR (a folder holding panoptic_{train,val}2017/; the held-out hooks inherit
# it). train_gan.train makes the dataset yield the edges because the generator takes them; a label map without its
# panoptic PNG stops the run before it starts, by name. Without instance maps:
# --cfg-options model.generator.use_instance_edges=False.
model = dict(label_space=label_space, generator=dict(preset="coco_stuff", use_instance_edges=True))
train_dataloader = dict(
    dataset=dict(type="SegPairDataset", data_root=data_root, label_space=label_space, crop_size=crop_size,
                 split="train", scale_range=(1.0, 1.0), instance_dir=None),
)
