"""Datasets: the embedded procedural scene generator and the dataset formats it is written in.

``dpsims_aug.data.scenes`` only needs numpy; ``dpsims_aug.data.writers`` needs Pillow (and ``datasets``
for the Hugging Face format, imported on use).
"""

from dpsims_aug.data.mmseg_configs import mmseg_dataset_config
from dpsims_aug.data.scenes import (
    CLASS_NAMES,
    iter_scenes,
    render_layout,
    render_scene,
    scene_grid,
    scene_seeds,
)
from dpsims_aug.data.writers import (
    WRITABLE_FORMATS,
    write_ade20k,
    write_cityscapes,
    write_dataset,
    write_folder,
    write_hf,
)

__all__ = [
    "CLASS_NAMES", "WRITABLE_FORMATS", "iter_scenes", "mmseg_dataset_config", "render_layout", "render_scene",
    "scene_grid", "scene_seeds", "write_ade20k", "write_cityscapes", "write_dataset", "write_folder",
    "write_hf",
]
