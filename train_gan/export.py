"""Turn an mmengine training checkpoint into the single-file inference checkpoint (``dpsims-aug export``)."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dpsims_aug.checkpoint import CheckpointError, GeneratorCheckpoint, save_generator_checkpoint
from dpsims_aug.labels import LabelSpace
from dpsims_aug.mm.checkpoints import allow_mmengine_checkpoints

DPSIMS_META_KEY = "dpsims"  # a training checkpoint's meta entry holding the generator config and label space
EMA_PREFIX = "generator_ema.module."


def export_generator(model, path: str | os.PathLike, summary: dict | None = None) -> None:
    """Write the EMA generator of a :class:`train_gan.model.DPSIMSGAN` as the single-file inference checkpoint."""
    ema = model.generator_ema.module
    save_generator_checkpoint(
        path,
        GeneratorCheckpoint(
            state_dict=ema.state_dict(),
            generator_config=model.generator_config.to_dict(),
            label_space=model.label_space,
            summary=summary or {},
        ),
    )


def export_training_checkpoint(
    checkpoint: str | os.PathLike, out: str | os.PathLike, dtype: torch.dtype | None = None,
    recalibrate: Sequence[np.ndarray] | None = None, batch_size: int = 8,
) -> GeneratorCheckpoint:
    """Extract the EMA generator, its config and LabelSpace from a training checkpoint and save them to ``out``.

    ``recalibrate``: contiguous training label maps (equal sizes) over which the EMA generator's BatchNorm
    statistics are re-collected first (:meth:`~dpsims_aug.models.DPSIMSGenerator.recalibrate_batch_norm`, in
    batches of ``batch_size``). Checkpoints written by train_gan already hold re-collected statistics; this is
    for older ones, and for re-collecting them on other label maps.

    The training checkpoint is read with ``weights_only=True``: tensors, plain data and exactly the numpy / mmengine
    classes mmengine stores (:func:`dpsims_aug.mm.checkpoints.allow_mmengine_checkpoints`). ``dtype`` stores the
    weights at that precision (see :func:`dpsims_aug.checkpoint.save_generator_checkpoint`).
    """
    allow_mmengine_checkpoints()
    try:
        data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            checkpoint, "holds pickled objects that safe (weights_only) loading refuses: not a training checkpoint "
            "written by train_gan"
        ) from err
    except Exception as err:  # noqa: BLE001 - any failure means the file is not a usable checkpoint
        first_line = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise CheckpointError(checkpoint, f"unreadable or truncated training checkpoint ({first_line})") from err
    meta = data.get("meta", {}).get(DPSIMS_META_KEY) if isinstance(data, dict) else None
    if meta is None or "state_dict" not in data:
        raise CheckpointError(checkpoint, "not a dpsims-aug training checkpoint (no generator config in its meta)")
    state = {k[len(EMA_PREFIX):]: v for k, v in data["state_dict"].items() if k.startswith(EMA_PREFIX)}
    if not state:
        raise CheckpointError(checkpoint, "holds no EMA generator weights")
    result = GeneratorCheckpoint(
        state_dict=state,
        generator_config=json.loads(meta["generator_config"]),
        label_space=LabelSpace.from_json(meta["label_space"]),
        summary={"iterations": data.get("meta", {}).get("iter"), "source": Path(checkpoint).name},
    )
    if recalibrate is not None:
        from dpsims_aug.models import DPSIMSGenerator, GeneratorConfig

        generator = DPSIMSGenerator(GeneratorConfig.from_dict(result.generator_config))
        generator.load_state_dict(result.state_dict, strict=True)
        maps = [torch.as_tensor(np.asarray(m)).long() for m in recalibrate]
        generator.recalibrate_batch_norm(torch.stack(maps[i : i + batch_size]) for i in range(0, len(maps), batch_size))
        result.state_dict = {k: v.detach().clone() for k, v in generator.state_dict().items()}
        result.summary["ema_bn_recalibrated_on"] = len(maps)
    save_generator_checkpoint(out, result, dtype=dtype)
    return result
