# DP-SIMS on Cityscapes at 512x256 (35 labelIds as SPADE/OASIS; leftImg8bit/ + gtFine/ *_labelIds.png).
# torchrun --nproc_per_node=8 -m train_gan.train train_gan/configs/cityscapes.py --launcher pytorch
_base_ = ["./_base_/paper.py"]

data_root = "data/cityscapes"
label_space = "cityscapes"
crop_size = (256, 512)

# Instance boundaries as an extra input (SPADE/OASIS): read from gtFine/<split>/<city>/*_gtFine_instanceIds.png next
# to each *_gtFine_labelIds.png (train_gan.train makes the dataset yield them because the generator takes them; a
# label map without its instanceIds file stops the run before it starts, by name). Without instance maps:
# --cfg-options model.generator.use_instance_edges=False.
model = dict(label_space=label_space, generator=dict(preset="cityscapes", use_instance_edges=True))
train_dataloader = dict(
    dataset=dict(type="SegPairDataset", data_root=data_root, label_space=label_space, crop_size=crop_size,
                 split="train", scale_range=(1.0, 1.0)),
)
