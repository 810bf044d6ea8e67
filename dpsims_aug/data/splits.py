"""Dataset splits: their canonical names, and the record that keeps validation label maps out of training.

Every folder the toolkit derives from label maps (a ``generate`` pool, a ``layouts`` folder, a ``filter`` copy)
records in :data:`SPLIT_RECORD` which splits its source label maps came from. Readers that feed training (the pool
transform, ``SyntheticMixDataset``, ``filter``) call :func:`check_trainable` and refuse, by name, a folder made from
validation or test label maps: a segmenter that has seen images of the validation layouts reports an inflated mIoU.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from dpsims_aug.fileio import atomic_write_text

TRAIN = "train"
UNKNOWN = "unknown"  # a folder with neither split folders, split lists nor a record: the user vouches for it
SPLIT_RECORD = "source_split.json"

# What users and datasets call a split -> its canonical name.
_CANONICAL = {
    "train": "train", "training": "train", "train2017": "train",
    "val": "val", "validation": "val", "valid": "val", "val2017": "val",
    "test": "test", "testing": "test", "test2017": "test",
}


class SplitLeakError(ValueError):
    """Label maps of a validation or test split were about to reach training."""


def canonical_split(name: str) -> str | None:
    """``train``, ``val`` or ``test`` for any usual spelling of a split (``training``, ``val2017``, ...), else None."""
    return _CANONICAL.get(str(name).lower())


def aliases_of(split: str) -> list[str]:
    """Every spelling of the canonical ``split``'s name (folder and list names a dataset may use)."""
    return sorted(name for name, canon in _CANONICAL.items() if canon == split)


def is_trainable(splits: Iterable[str]) -> bool:
    """Whether data made from label maps of ``splits`` may be used for training (no validation or test split)."""
    return all(s in (TRAIN, UNKNOWN) for s in splits)


def record_splits(folder: str | os.PathLike, splits: Iterable[str], source: str | os.PathLike | None) -> None:
    """Write :data:`SPLIT_RECORD` in ``folder``: the splits (canonical names, or ``unknown``) of the label maps its
    contents were made from, and their source."""
    data = {"splits": sorted(set(splits)), "source": None if source is None else str(source)}
    atomic_write_text(Path(folder) / SPLIT_RECORD, json.dumps(data, indent=1) + "\n")


def recorded_splits(folder: str | os.PathLike) -> list[str] | None:
    """The splits recorded in ``folder`` (None if it has no record, e.g. a folder written by an older version).

    Raises:
        ValueError: naming the file, if the record is unreadable.
    """
    path = Path(folder) / SPLIT_RECORD
    if not path.is_file():
        return None
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))["splits"]
        if not isinstance(splits, list):
            raise TypeError("'splits' is not a list")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: unreadable split record ({err})") from err
    return [str(s) for s in splits]


def check_trainable(folder: str | os.PathLike, what: str) -> list[str] | None:
    """Refuse ``folder`` as training data if its record says it was made from validation or test label maps.

    Args:
        folder: A pool, layouts folder or filtered copy.
        what: Who asks, for the message (e.g. ``"DPSIMSPoolAugment(pool=...)"``).

    Returns:
        The recorded splits (None when the folder has no record).

    Raises:
        SplitLeakError: naming the folder, its splits and what to do.
    """
    splits = recorded_splits(folder)
    if splits is not None and not is_trainable(splits):
        raise SplitLeakError(
            f"{what}: {folder} was made from label maps of the split(s) {', '.join(splits)} ({SPLIT_RECORD}); "
            "images of validation or test layouts must never reach training (the mIoU measured on those layouts "
            "would be inflated). Make the synthetic data from the training split: --split train (the default)"
        )
    return splits
