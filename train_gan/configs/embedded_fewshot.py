# DP-SIMS on a few labelled images (tens) that the segmenter learns from too: the embedded 'small' model trained on
# copies of its images whose classes are recoloured on their own (brightness and tint per class, as the ClassRecolour
# transform does for the segmenter), so the noise learns per-class appearances; held-out hooks see the real images.
# The best of the levers measured on a GAN trained on 16 snow images (docs/studies.md, v7): +1.51 +- 0.12 mIoU over
# 3 GAN runs x 3 segmenter seeds, against +0.64 +- 0.37 for embedded_small. Recolouring the segmenter's real images
# alone (augment/embedded/fastscnn_embedded_recolour.py, no GAN) gained more there (+2.03); this is the recipe for when
# you do train a GAN on the images. 1000 iterations at batch 8 (500 passes over 16 images; 500 gained no more).
# 16 snow scenes: dpsims-aug dataset --domain snow --train 16 --val 200 --size 64 --out work_dirs/data/snow16
# then: dpsims-aug train embedded_fewshot --data-root work_dirs/data/snow16 --work-dir work_dirs/snow16_gan
_base_ = ["./embedded_small.py"]

train_dataloader = dict(dataset=dict(class_recolour=0.3))
train_cfg = dict(max_iters=1000)
