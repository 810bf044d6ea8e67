"""mmseg dataset configs for folders this package writes: the embedded dataset's formats and the pools.

One place says which keys a ``BaseSegDataset`` config of ours gets (:func:`base_seg_dataset`); writers and pools
build theirs with it.
"""

from __future__ import annotations

import os

from dpsims_aug.labels import LabelSpace, embedded_label_space

__all__ = ["base_seg_dataset", "mmseg_dataset_config"]


def base_seg_dataset(data_root: str | os.PathLike, space: LabelSpace, *, img_path: str, seg_map_path: str,
                     img_suffix: str, seg_map_suffix: str, reduce_zero_label: bool,
                     ann_file: str | None = None) -> dict:
    """An mmseg ``BaseSegDataset`` config (no pipeline) whose metainfo is ``space``'s classes and palette: the one
    place that says which keys such a config gets (:func:`mmseg_dataset_config`, and a pool's
    ``dataset_config.py``)."""
    cfg = dict(type="BaseSegDataset", data_root=str(data_root),
               metainfo=dict(classes=tuple(space.class_names), palette=[list(c) for c in space.palette]))
    if ann_file is not None:
        cfg["ann_file"] = ann_file
    cfg.update(data_prefix=dict(img_path=img_path, seg_map_path=seg_map_path), img_suffix=img_suffix,
               seg_map_suffix=seg_map_suffix, reduce_zero_label=reduce_zero_label)
    return cfg


def mmseg_dataset_config(root: str | os.PathLike, dataset_format: str, split: str = "train",
                         label_space: LabelSpace | None = None) -> dict:
    """An mmseg dataset config (``BaseSegDataset``, no pipeline) that reads ``split`` of a written dataset format
    (``ade20k``, ``cityscapes`` or ``folder``).

    The labels it yields are contiguous ids 0..C-1 with 255 for unlabeled pixels in every format.
    """
    space = label_space or embedded_label_space()
    if split not in ("train", "val"):
        raise ValueError(f"split must be one of ['train', 'val'], got {split!r}")
    if dataset_format == "ade20k":
        d = {"train": "training", "val": "validation"}[split]
        return base_seg_dataset(root, space, img_path=f"images/{d}", seg_map_path=f"annotations/{d}",
                                img_suffix=".jpg", seg_map_suffix=".png", reduce_zero_label=True)
    if dataset_format == "cityscapes":
        return base_seg_dataset(root, space, img_path=f"leftImg8bit/{split}", seg_map_path=f"gtFine/{split}",
                                img_suffix="_leftImg8bit.png", seg_map_suffix="_gtFine_labelTrainIds.png",
                                reduce_zero_label=False)
    if dataset_format == "folder":
        return base_seg_dataset(root, space, img_path="images", seg_map_path="labels", img_suffix=".png",
                                seg_map_suffix=".png", reduce_zero_label=True, ann_file=f"splits/{split}.txt")
    raise ValueError(f"no mmseg dataset config for dataset format {dataset_format!r}: use ade20k, cityscapes or "
                     "folder")
