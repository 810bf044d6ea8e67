# Runtime shared by every augment/ config (complete: no mmseg:: base configs, see ENVIRONMENT.md).
default_scope = 'mmseg'
# Registers DPSIMSAugment and MapLabelIds in mmseg's TRANSFORMS (works whether or not dpsims_aug was imported before).
custom_imports = dict(imports=['dpsims_aug.transforms'], allow_failed_imports=False)
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
