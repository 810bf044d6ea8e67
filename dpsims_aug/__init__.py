"""dpsims-aug: DP-SIMS semantic image synthesis as a data-augmentation toolkit for mmsegmentation.

Importing this package never requires mmcv/mmseg; the mmseg pipeline transform registers itself only when they
are importable.
"""

from dpsims_aug.labels import LabelMapError, LabelSpace, get_label_space

__version__ = "0.1.0"

__all__ = ["LabelMapError", "LabelSpace", "get_label_space", "__version__"]
