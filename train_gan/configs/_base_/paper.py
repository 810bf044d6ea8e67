# Shared settings of the paper-scale configs (ADE-20K, COCO-Stuff, Cityscapes) for GPU clusters.
# Per-GPU batch 4; with 8 GPUs (torchrun --nproc_per_node=8) the global batch is 32, as in OASIS.
_base_ = ["./runtime.py"]

model = dict(
    type="DPSIMSGAN",
    # The paper's best discriminator backbone. "hub" downloads timm's ImageNet weights (needs a network);
    # offline, point `weights` at a local .pth/.safetensors file in timm's layout.
    discriminator=dict(backbone="convnext_large", weights="hub", decoder_channels=64, max_decoder_channels=256,
                       high_res_channels=32),
    loss=dict(focal_gamma=2.0, labelmix=10.0, patch_nce=1.0, nce_patches=256, diversity=1.0),
    ema_halflife_iters=2000,
)
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="EpochSeededSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
)
train_cfg = dict(type="IterBasedTrainLoop", max_iters=100000)
default_hooks = dict(checkpoint=dict(interval=5000))
# Held-out label maps: the training dataset's val split (train_gan.hooks.held_out_dataset); `dataset=dict(...)`
# overrides its fields.
custom_hooks = [
    dict(type="GANCheckpointHook"),
    dict(type="SampleGridHook", interval=5000, num_images=8, num_seeds=3),
    # FID of EMA samples on the whole validation split every 5000 iterations. For mIoU add
    # segmenter_config=/segmenter_checkpoint= of an mmseg model trained on the real images.
    dict(type="GANEvaluationHook", interval=5000, num_seeds=1),
    dict(type="ExportGeneratorHook"),
]
