"""Load mmengine's own training checkpoints with ``torch.load(weights_only=True)`` (the torch >= 2.6 default).

mmengine 0.10.7 pickles its ``MessageHub`` state (``HistoryBuffer`` objects holding numpy arrays) into every
checkpoint, which the safe unpickler refuses, so ``resume=True`` fails. Rather than turning ``weights_only`` off
globally, we allow exactly the few plain-data classes those checkpoints contain.
"""

from __future__ import annotations

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _numpy_globals() -> list:
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed np.core to np._core
    dtype_classes = [type(np.dtype(name)) for name in ("float16", "float32", "float64", "int32", "int64", "bool")]
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]


def allow_mmengine_checkpoints() -> None:
    """Register the classes of mmengine checkpoints as safe for ``weights_only=True`` loading (idempotent)."""
    torch.serialization.add_safe_globals([HistoryBuffer, *_numpy_globals()])
