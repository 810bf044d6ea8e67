"""``torch.load(weights_only=True)`` for mmengine checkpoints: allow exactly the classes they hold.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7's checkpoints hold more than tensors:
numpy arrays, scalars and dtypes (meta, message hub) and the message hub's ``HistoryBuffer`` objects, which pickle
their statistics methods as ``getattr(HistoryBuffer, 'mean')``. :func:`allow_mmengine_checkpoints` adds exactly
these to torch's safe unpickler (``torch.serialization.add_safe_globals``), with ``getattr`` replaced by a function
that only hands out ``HistoryBuffer``'s own statistics methods. The unpickler stays safe for everything else;
``weights_only=False`` is never needed.

It runs when ``dpsims_aug.transforms`` or ``dpsims_aug.engine`` is imported, i.e. in every mmseg config that uses
the toolkit (``custom_imports``) and under ``import dpsims_aug`` inside an OpenMMLab program: stock mmseg
``resume=True`` and ``mmseg.apis.init_model`` then read such checkpoints.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

_HISTORY_METHODS = ("mean", "min", "max", "current")  # HistoryBuffer's registered statistics


def _numpy_globals() -> list:
    """The numpy callables and classes that pickled arrays, scalars and dtypes name."""
    from numpy._core import multiarray

    dtypes = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.float16, np.float32, np.float64)
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *(type(np.dtype(t)) for t in dtypes)]


def _history_buffer_method(owner: object, name: str):
    """Stands in for ``getattr`` while unpickling: only ``HistoryBuffer``'s statistics methods, nothing else."""
    from mmengine.logging import HistoryBuffer

    if owner is not HistoryBuffer or name not in _HISTORY_METHODS:
        raise torch.serialization.pickle.UnpicklingError(
            f"weights_only load: getattr({owner!r}, {name!r}) is not an mmengine HistoryBuffer statistic")
    return getattr(HistoryBuffer, name)


@functools.cache
def allow_mmengine_checkpoints() -> None:
    """Register the classes of mmengine checkpoints with torch's safe unpickler (once per process)."""
    allowed = _numpy_globals()
    try:
        from mmengine.logging import HistoryBuffer
    except ImportError:  # no mmengine: numpy only
        HistoryBuffer = None
    if HistoryBuffer is not None:
        allowed += [HistoryBuffer, (_history_buffer_method, "builtins.getattr"),
                    (_history_buffer_method, "__builtin__.getattr")]
    torch.serialization.add_safe_globals(allowed)
