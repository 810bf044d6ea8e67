"""What the augmentation recipe does to a synthetic pool written by ``dpsims-aug generate``.

* :mod:`dpsims_aug.pool.filter`: FreeMask-style filtering of synthetic pixels a segmenter trained on real data
  finds implausible, and hardness-aware resampling of the pool's images per label map (``dpsims-aug filter``).
"""
