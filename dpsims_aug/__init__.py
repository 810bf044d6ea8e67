"""dpsims-aug: DP-SIMS semantic image synthesis as a data-augmentation toolkit for mmsegmentation.

Importing this package never requires mmcv/mmseg; the mmseg pipeline transform registers itself only when they
are importable.
"""

from dpsims_aug.labels import LabelMapError, LabelSpace, get_label_space

__version__ = "0.1.0"

__all__ = ["LabelMapError", "LabelSpace", "get_label_space", "__version__"]

# Register the OpenMMLab parts (dpsims_aug.mm: transforms, hooks, datasets) when running inside an OpenMMLab program,
# e.g. while mmengine processes a config's `custom_imports = dict(imports=['dpsims_aug'])`. Importing mmcv costs ~3 s
# (torch), so a plain `import dpsims_aug` (CLI, scripts) skips it; `imports=['dpsims_aug.mm']` always registers.
import sys as _sys  # noqa: E402

if any(_name in _sys.modules for _name in ("mmengine", "mmcv", "mmseg")):
    try:
        from dpsims_aug import mm as _mm  # noqa: F401
    except ImportError:  # mmcv missing or broken: the toolkit works without the transforms
        pass
