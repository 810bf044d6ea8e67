"""The synthetic pool: N generated images per real label map, as an mmseg-ready folder.

* :mod:`dpsims_aug.pool.format`: the folder as a format (file names, manifest and shard parts, labels.json, the
  mmseg dataset-config text, the Hugging Face export): what every reader of a pool relies on;
* :mod:`dpsims_aug.pool.writer`: ``dpsims-aug generate`` (:func:`~dpsims_aug.pool.writer.generate`), crash-safe,
  resumable and sharded;
* :mod:`dpsims_aug.pool.preview`: the ``preview.png`` sheet;
* :mod:`dpsims_aug.pool.filter`: FreeMask-style filtering of synthetic pixels a segmenter trained on real data
  finds implausible, and hardness-aware resampling of the pool's images per label map (``dpsims-aug filter``).
"""
