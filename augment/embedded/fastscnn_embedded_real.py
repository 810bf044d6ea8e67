# Fast-SCNN (random init, nothing downloaded) on the embedded scenes at CPU scale: real images only (baseline).
# Train with mmseg's tools/train.py, or: python -c "from mmengine.config import Config; from mmengine.runner import
# Runner; Runner.from_cfg(Config.fromfile('augment/embedded/fastscnn_embedded_real.py')).train()"
_base_ = [
    '../_base_/models/fast_scnn.py', '../_base_/datasets/embedded.py', '../_base_/default_runtime.py',
    '../_base_/schedules/cpu_2k.py'
]
crop_size = (128, 128)
model = dict(data_preprocessor=dict(size=crop_size))  # 10 classes: set in the Fast-SCNN base
