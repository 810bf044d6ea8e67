# Runtime shared by every augment/ config (complete: no mmseg:: base configs, because mmengine
# resolves `mmseg::` by the distribution name `mmsegmentation`, which the onedl-mmsegmentation fork does not have).
default_scope = 'mmseg'
# Registers the toolkit's OpenMMLab parts (dpsims_aug.mm): DPSIMSAugment and MapLabelIds in mmseg's TRANSFORMS,
# SyntheticMixDataset, and SafeCheckpointHook, which keeps checkpoints loadable with torch.load(weights_only=True) so
# that `resume=True` works on torch >= 2.6 with mmengine 0.10.7.
custom_imports = dict(imports=['dpsims_aug.mm'], allow_failed_imports=False)
custom_hooks = [dict(type='SafeCheckpointHook')]
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
tta_model = dict(type='SegTTAModel')
