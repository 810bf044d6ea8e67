"""mmengine integration shared by the GAN trainer (``train_gan``) and the segmenter configs (``augment/``).

Importing this module needs mmengine (``import dpsims_aug`` does not import it). It registers:

* ``SafeCheckpointHook``: makes every checkpoint a run writes loadable with ``torch.load(weights_only=True)``, the
  torch >= 2.6 default that mmengine 0.10.7's own resume trips over;
* the ``atomic_local`` file backend: checkpoint writes that a killed run cannot leave half-written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

from dpsims_aug.fileio import atomic_write_bytes


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


def plain_message_hub(value):
    """numpy values and ``HistoryBuffer`` objects -> plain Python/torch data, recursively (what
    ``torch.load(weights_only=True)`` accepts)."""
    if isinstance(value, HistoryBuffer):
        log, count = value.data
        return {"__history_buffer__": True, "log": log.tolist(), "count": count.tolist(),
                "max_length": value.max_length}
    if isinstance(value, dict):
        return {k: plain_message_hub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_message_hub(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def restore_message_hub(value):
    """Inverse of :func:`plain_message_hub` for the history buffers."""
    if isinstance(value, dict):
        if value.get("__history_buffer__"):
            return HistoryBuffer(np.array(value["log"]), np.array(value["count"]), value["max_length"])
        return {k: restore_message_hub(v) for k, v in value.items()}
    return value


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Keep checkpoints loadable with ``weights_only=True`` so that ``resume`` works on torch >= 2.6.

    mmengine 0.10.7 pickles numpy-backed ``HistoryBuffer`` objects into the message hub state, which the safe
    unpickler refuses. They are stored as plain lists and rebuilt on load, so resume works without allow-listing
    any class (and without ``weights_only=False``).
    """

    priority = "VERY_HIGH"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint["message_hub"] = plain_message_hub(checkpoint["message_hub"])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = restore_message_hub(checkpoint["message_hub"])
