"""Start a GAN training run from an exported generator (transfer learning for small labelled sets).

A generator trained on many scenes already knows how to draw textures and light; fine-tuning it on a few labelled
images of the user's data needs far fewer images than learning that from scratch. The source may come from another
dataset: the class embedding is the only class-dependent weight of the generator, and its rows are matched by class
name, so classes both datasets share start from the source's embedding and the others from the usual random init.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from dpsims_aug.checkpoint import CheckpointError, load_generator_checkpoint
from dpsims_aug.labels import LabelSpace
from dpsims_aug.models import DPSIMSGenerator, GeneratorConfig

# Generator fields that do not change any weight's shape or meaning: the class count is handled by the embedding
# mapping below, and the nominal image size is informational.
_FREE_FIELDS = {"num_classes", "ignore_index", "image_size"}
CLASS_EMBEDDING = "embed.weight"


def _name_key(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


def init_generator_from(generator: DPSIMSGenerator, path: str | os.PathLike, label_space: LabelSpace) -> dict:
    """Copy the weights of the exported generator at ``path`` into ``generator`` (trained on ``label_space``).

    Every weight but the class embedding must match in shape (same architecture); the embedding rows of classes
    whose names appear in the source's label space are copied, as is the row of unlabelled pixels.

    Returns:
        ``dict(source=..., matched_classes=[...], new_classes=[...])`` for the training log.

    Raises:
        CheckpointError: the file is not a generator export, or its architecture differs (names the field).
    """
    checkpoint = load_generator_checkpoint(path)
    ours = generator.config.to_dict()
    defaults = {f.name: f.default for f in dataclasses.fields(GeneratorConfig)
                if f.default is not dataclasses.MISSING}  # fields newer than the file take their defaults
    stored = {**defaults, **checkpoint.generator_config}
    for key in sorted((set(ours) | set(stored)) - _FREE_FIELDS):
        theirs = stored.get(key)
        if theirs != ours.get(key) and not (isinstance(theirs, list) and tuple(theirs) == tuple(ours.get(key, ()))):
            raise CheckpointError(
                path, f"cannot start from this generator: its {key} is {theirs!r}, the configured one is "
                      f"{ours.get(key)!r} (choose the same generator preset and overrides)")
    state = generator.state_dict()
    source_rows = {_name_key(n): i for i, n in enumerate(checkpoint.label_space.class_names)}
    matched, new = [], []
    with torch.no_grad():
        for key, value in checkpoint.state_dict.items():
            if key not in state:
                raise CheckpointError(path, f"weight {key!r} does not exist in the configured generator")
            if key == CLASS_EMBEDDING:
                continue
            if state[key].shape != value.shape:
                raise CheckpointError(path, f"weight {key!r} has shape {tuple(value.shape)}, the configured "
                                            f"generator's is {tuple(state[key].shape)}")
            state[key].copy_(value.to(state[key].dtype))
        missing = set(state) - set(checkpoint.state_dict)
        if missing:
            raise CheckpointError(path, f"lacks weights of the configured generator: {sorted(missing)[:5]}")
        source_embedding = checkpoint.state_dict[CLASS_EMBEDDING]
        embedding = state[CLASS_EMBEDDING]
        if source_embedding.shape[1] != embedding.shape[1]:
            raise CheckpointError(path, f"class embedding width {source_embedding.shape[1]}, the configured "
                                        f"generator's is {embedding.shape[1]}")
        for c, name in enumerate(label_space.class_names):
            row = source_rows.get(_name_key(name))
            if row is None:
                new.append(name)
                continue
            embedding[c].copy_(source_embedding[row].to(embedding.dtype))
            matched.append(name)
        embedding[-1].copy_(source_embedding[-1].to(embedding.dtype))  # the unlabelled row
    return dict(source=str(path), matched_classes=matched, new_classes=new)
