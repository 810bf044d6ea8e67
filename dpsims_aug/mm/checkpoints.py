"""mmengine checkpoints, safely: ``torch.load(weights_only=True)`` for them, atomic checkpoint writes, and the hook
that makes ``resume`` use both.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7's checkpoints hold more than tensors:
numpy arrays, scalars and dtypes (meta, message hub) and the message hub's ``HistoryBuffer`` objects, which pickle
their statistics methods as ``getattr(HistoryBuffer, 'mean')``. :func:`allow_mmengine_checkpoints` adds exactly
these to torch's safe unpickler (``torch.serialization.add_safe_globals``), with ``getattr`` replaced by a function
that only hands out ``HistoryBuffer``'s own statistics methods. The unpickler stays safe for everything else;
``weights_only=False`` is never needed.

It runs when :mod:`dpsims_aug.mm` is imported, i.e. in every mmseg config that uses the toolkit
(``custom_imports``) and under ``import dpsims_aug`` inside an OpenMMLab program: stock mmseg ``resume=True`` and
``mmseg.apis.init_model`` then read such checkpoints.

Registered here: ``SafeCheckpointHook`` (mmengine ``HOOKS``) and the ``atomic_local`` file backend.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

from dpsims_aug.fileio import atomic_write_bytes

_HISTORY_METHODS = ("mean", "min", "max", "current")  # HistoryBuffer's registered statistics


def _numpy_globals() -> list:
    """The numpy callables and classes that pickled arrays, scalars and dtypes name."""
    from numpy._core import multiarray

    dtypes = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.float16, np.float32, np.float64)
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *(type(np.dtype(t)) for t in dtypes)]


def _history_buffer_method(owner: object, name: str):
    """Stands in for ``getattr`` while unpickling: only ``HistoryBuffer``'s statistics methods, nothing else."""
    if owner is not HistoryBuffer or name not in _HISTORY_METHODS:
        raise torch.serialization.pickle.UnpicklingError(
            f"weights_only load: getattr({owner!r}, {name!r}) is not an mmengine HistoryBuffer statistic")
    return getattr(HistoryBuffer, name)


@functools.cache
def allow_mmengine_checkpoints() -> None:
    """Register the classes of mmengine checkpoints with torch's safe unpickler (once per process)."""
    torch.serialization.add_safe_globals([
        *_numpy_globals(), HistoryBuffer,
        (_history_buffer_method, "builtins.getattr"), (_history_buffer_method, "__builtin__.getattr")])


allow_mmengine_checkpoints()


def load_mmengine_checkpoint(path: str | os.PathLike) -> dict:
    """Read an mmengine / mmseg checkpoint with ``torch.load(weights_only=True)``.

    The numpy and ``HistoryBuffer`` objects mmengine stores are allowed by :func:`allow_mmengine_checkpoints`
    (exactly those classes); anything else that needs code to unpickle is refused.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: naming the file, if it cannot be read safely or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"segmenter checkpoint not found: '{path}'")
    allow_mmengine_checkpoints()
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or damaged files
        raise ValueError(f"{path}: cannot read the checkpoint with weights_only=True ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from err
    if isinstance(checkpoint, dict) and "state_dict" not in checkpoint and checkpoint and all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        checkpoint = {"state_dict": checkpoint}  # a bare state dict
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{path}: not an mmengine checkpoint (no 'state_dict')")
    return checkpoint


@register_backend("atomic_local")
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, but every write is atomic: a run killed while saving a checkpoint leaves
    the previous checkpoint intact instead of a truncated file. (mmengine's ``CheckpointHook`` writes the
    ``last_checkpoint`` pointer itself with a plain ``open()``, not through the backend; ``train_gan``'s resume falls
    back to the newest checkpoint on disk when that pointer is torn.)

    Use it with ``CheckpointHook(backend_args=dict(backend='atomic_local'))``.
    """

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = "utf-8") -> None:
        atomic_write_bytes(filepath, obj.encode(encoding))


def restore_message_hub(value):
    """Message hubs of checkpoints written by earlier versions of :class:`SafeCheckpointHook` (history buffers
    stored as plain ``{"__history_buffer__": True, ...}`` dicts) -> ``HistoryBuffer`` objects again."""
    if isinstance(value, dict):
        if value.get("__history_buffer__"):
            return HistoryBuffer(np.array(value["log"]), np.array(value["count"]), value["max_length"])
        return {k: restore_message_hub(v) for k, v in value.items()}
    return value


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Make ``resume`` work with ``torch.load(weights_only=True)`` (the torch >= 2.6 default).

    Registers mmengine's checkpoint classes with torch's safe unpickler
    (:func:`allow_mmengine_checkpoints`, which importing this module already does) and
    reads the plain message hubs that earlier versions of this hook wrote. Checkpoints are saved as mmengine saves
    them, so stock tools read them too.
    """

    priority = "VERY_HIGH"

    def before_run(self, runner) -> None:
        allow_mmengine_checkpoints()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = restore_message_hub(checkpoint["message_hub"])
