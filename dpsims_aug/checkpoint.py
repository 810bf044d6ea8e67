"""The single-file inference checkpoint: generator (EMA) weights + generator config + LabelSpace + summary.

Stored as safetensors: tensors in the body, everything else as JSON strings in the header metadata. Loading never
unpickles anything, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dpsims_aug.fileio import atomic_path
from dpsims_aug.labels import LabelSpace

FORMAT_NAME = "dpsims-aug-generator"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {problem}")


@dataclass
class GeneratorCheckpoint:
    """What an exported generator file holds.

    Attributes:
        state_dict: Generator weights (the EMA copy when exported by the trainer).
        generator_config: ``GeneratorConfig.to_dict()`` of the network.
        label_space: The label space the generator was trained on.
        summary: Free-form JSON-serializable training summary (iterations, dataset, losses, ...).
    """

    state_dict: dict[str, torch.Tensor]
    generator_config: dict
    label_space: LabelSpace
    summary: dict = field(default_factory=dict)


def save_generator_checkpoint(
    path: str | os.PathLike, checkpoint: GeneratorCheckpoint, dtype: torch.dtype | None = None
) -> None:
    """Write ``checkpoint`` to ``path`` (safetensors, atomically).

    ``dtype`` (e.g. ``torch.float16``) stores floating-point weights at that precision, halving the file for the
    bundled model; loading casts them back to the model's dtype.
    """
    from safetensors.torch import save_file

    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "generator_config": json.dumps(checkpoint.generator_config),
        "label_space": checkpoint.label_space.to_json(),
        "summary": json.dumps(checkpoint.summary),
    }
    # safetensors refuses shared or non-contiguous storage; inference weights need neither.
    tensors = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().to("cpu").contiguous().clone()
        for k, v in checkpoint.state_dict.items()
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_generator_checkpoint(path: str | os.PathLike, weights: bool = True) -> GeneratorCheckpoint:
    """Read a checkpoint written by :func:`save_generator_checkpoint` (``weights=False``: its metadata only, with an
    empty ``state_dict``, e.g. for the label space in a dataloader worker).

    Raises:
        CheckpointError: if the file is missing, truncated, not safetensors, or not a dpsims-aug generator.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT_NAME:
                raise CheckpointError(
                    path, "not a dpsims-aug generator checkpoint (safetensors file without our metadata)"
                )
            version = int(metadata.get("format_version", -1))
            if version > FORMAT_VERSION:
                raise CheckpointError(
                    path, f"format version {version} is newer than this dpsims-aug supports ({FORMAT_VERSION})"
                )
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()} if weights else {}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        # The usual cause is a training checkpoint given where the exported generator is expected: say how to
        # make one from it.
        raise CheckpointError(
            path, f"not a safetensors checkpoint, or unreadable or truncated ({err}). A training checkpoint "
            f"(iter_N.pth) is turned into one with: dpsims-aug export {path} --out {path.with_suffix('.safetensors')}"
        ) from err
    try:
        return GeneratorCheckpoint(
            state_dict=state_dict,
            generator_config=json.loads(metadata["generator_config"]),
            label_space=LabelSpace.from_json(metadata["label_space"]),
            summary=json.loads(metadata.get("summary", "{}")),
        )
    except (KeyError, ValueError) as err:
        raise CheckpointError(path, f"corrupt checkpoint metadata ({err})") from err


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (identifies the checkpoint in manifests)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
