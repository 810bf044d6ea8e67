"""The OpenMMLab wing: what mmengine / mmseg programs use of the toolkit.

``custom_imports = dict(imports=['dpsims_aug.mm'], allow_failed_imports=False)`` in an mmseg config registers all
of it:

* :mod:`~dpsims_aug.mm.transforms`: ``DPSIMSAugment`` (online synthesis), ``DPSIMSPoolAugment`` (images of a
  ``generate`` pool), ``MapLabelIds`` and ``ClassRecolour`` (per-class brightness and tint; mmseg ``TRANSFORMS``);
* :mod:`~dpsims_aug.mm.batch_synthesis` (imported by the configs that use it, as it imports mmseg's models):
  ``DPSIMSSelect`` (``TRANSFORMS``) and ``DPSIMSDataPreprocessor`` (``MODELS``), online synthesis batched in the
  segmenter's data preprocessor (the GPU form);
* :mod:`~dpsims_aug.mm.datasets`: ``SyntheticMixDataset`` (mmengine ``DATASETS``);
* :mod:`~dpsims_aug.mm.checkpoints`: ``SafeCheckpointHook`` (``HOOKS``), the ``atomic_local`` file backend, and
  ``torch.load(weights_only=True)`` for mmengine checkpoints;
* :mod:`~dpsims_aug.mm.segmenter`: an mmseg segmenter as a function of RGB images (metrics, filter, TSTR).
"""

import contextlib
import io
import warnings

# mmcv-lite lacks the compiled MultiScaleDeformableAttention op, which no model of this project uses; mmcv warns
# about it whenever mmseg's models are imported.
warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")

# mmseg print()s "Could not import OneDL" (its optional extension) on stdout when its datasets are first imported,
# whatever the log level: import them once here, silently.
with contextlib.redirect_stdout(io.StringIO()):
    import mmseg.datasets  # noqa: F401

from dpsims_aug.mm import checkpoints, datasets, transforms  # noqa: E402, F401  (registers them)
