"""Training data for the GAN: (image, label map) pairs with augmentation that is a pure function of the sample.

Every random choice of a sample (resize scale, crop offset, flip, class recolouring) comes from a generator seeded with
``(seed, virtual_index)``, where the virtual index ``epoch * len(dataset) + index`` is produced by
:class:`EpochSeededSampler`. So the data stream depends neither on the number of workers nor on the process that
loads it, and a resumed run sees exactly the batches an uninterrupted run would have seen.

Generators with ``use_instance_edges`` also get each sample's instance boundaries (``instance_edges=True``, which
``train_gan.train`` sets from the model config): the instance map goes through the same resize (nearest), crop and
flip as the label map, then :func:`dpsims_aug.instance_edges.instance_edges` makes the edge map.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.registry import DATA_SAMPLERS, DATASETS
from PIL import Image
from torch.utils.data import Dataset, Sampler

from dpsims_aug.data.recolour import check_recolour_options, recolour_classes
from dpsims_aug.instance_edges import instance_edges, missing_instance_map, read_instance_map
from dpsims_aug.label_maps import load_label_map
from dpsims_aug.labels import LabelMapError, LabelSpace, get_label_space

# What a training run without instance maps is told (after "<label map>: has no instance map (expected ...)").
NO_INSTANCE_HINT = ("the generator uses instance edges (use_instance_edges=True), so every training and held-out "
                    "label map needs its instance map: put them there, give their folder as the dataset's "
                    "instance_dir, or train without edges (--cfg-options model.generator.use_instance_edges=False)")


def _pair_size(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


@DATASETS.register_module()
class SegPairDataset(Dataset):
    """Image/label-map pairs of a dataset on disk, resized, cropped and flipped for GAN training.

    Args:
        data_root: Dataset root in any dataset format :func:`dpsims_aug.data.readers.find_pairs` understands (ADE-20K,
            Cityscapes, COCO-Stuff, a plain images/ + labels/ folder).
        label_space: Preset name or LabelSpace JSON path (raw ids on disk -> contiguous ids).
        crop_size: Training resolution (height, width) or an int for squares.
        split: Dataset split (``train``/``val``; format-specific names are resolved by the reader).
        dataset_format: The on-disk folder structure: ``auto`` (detected) or a name of
            :data:`dpsims_aug.data.readers.READABLE_FORMATS`.
        scale_range: The shorter image side is resized to ``min(crop) * s`` with ``s`` drawn from this range
            before the random crop (``(1, 1)``: resize only, then a random crop along the longer side).
        flip: Random horizontal flip with probability 0.5.
        seed: Base seed of the augmentation.
        max_samples: Use only the first ``max_samples`` pairs (low-data studies, quick runs).
        instance_edges: Also yield ``edges`` (``[1, H, W]`` float, 1 on instance boundaries) from each label map's
            instance map (found by the naming conventions of :mod:`dpsims_aug.instance_edges`). A label map without
            one is refused here, by name, with the path looked for. ``train_gan.train`` sets this from
            ``model.generator``'s ``use_instance_edges``.
        instance_dir: A folder of instance maps, looked at before the conventions (e.g. COCO's
            ``annotations/`` folder holding ``panoptic_train2017/`` and ``panoptic_val2017/``).
        class_recolour: Strength of per-class recolouring of the training images
            (:func:`dpsims_aug.data.recolour.recolour_classes`, after the flip; 0: off). A lever for GANs trained on
            a handful of images: their classes' appearances recombine.
        class_recolour_prob: Probability that a class of a sample is recoloured.
    """

    def __init__(
        self,
        data_root: str | os.PathLike,
        label_space: str | LabelSpace = "embedded",
        crop_size: int | Sequence[int] = 64,
        split: str = "train",
        dataset_format: str = "auto",
        scale_range: Sequence[float] = (1.0, 1.0),
        flip: bool = True,
        seed: int = 0,
        max_samples: int | None = None,
        instance_edges: bool = False,
        instance_dir: str | os.PathLike | None = None,
        class_recolour: float = 0.0,
        class_recolour_prob: float = 0.5,
    ) -> None:
        from dpsims_aug.data.readers import find_pairs

        self.label_space = label_space if isinstance(label_space, LabelSpace) else get_label_space(label_space)
        self.crop_size = _pair_size(crop_size)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.flip = flip
        self.seed = seed
        check_recolour_options(class_recolour, class_recolour_prob)
        self.class_recolour, self.class_recolour_prob = float(class_recolour), float(class_recolour_prob)
        self.pairs = find_pairs(data_root, dataset_format=dataset_format, split=split)
        if max_samples is not None:
            self.pairs = self.pairs[:max_samples]
        if not self.pairs:
            raise LabelMapError(data_root, f"no image/label pairs found for split {split!r}")
        self.instance_paths: list | None = None
        if instance_edges:
            self.instance_paths = find_instance_paths(data_root, self.pairs, dataset_format, split,
                                                      instance_dir)

    def __len__(self) -> int:
        return len(self.pairs)

    def load_instances(self, index: int, shape: tuple[int, int]) -> np.ndarray:
        """The instance ids (``int32``) of pair ``index``, which must have the label map's ``shape``."""
        path = self.instance_paths[index]
        ids = read_instance_map(path)
        if ids.shape != tuple(shape):
            raise LabelMapError(path, f"instance map is {ids.shape[1]}x{ids.shape[0]} but its label map "
                                      f"{self.pairs[index][1]} is {shape[1]}x{shape[0]}")
        return ids

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The un-augmented (RGB uint8 image, contiguous label map) of pair ``index``."""
        image_path, label_path = self.pairs[index]
        labels = load_label_map(label_path, self.label_space)
        try:
            with Image.open(image_path) as img:
                image = np.asarray(img.convert("RGB"))
        except OSError as err:
            raise LabelMapError(image_path, f"unreadable image ({err})") from err
        if image.shape[:2] != labels.shape:
            raise LabelMapError(
                image_path, f"image is {image.shape[1]}x{image.shape[0]} but its label map {label_path} is "
                f"{labels.shape[1]}x{labels.shape[0]}"
            )
        return image, labels

    def __getitem__(self, virtual_index: int) -> dict:
        index = virtual_index % len(self.pairs)
        rng = np.random.default_rng([self.seed, virtual_index])
        image, labels = self.load(index)
        instances = None if self.instance_paths is None else self.load_instances(index, labels.shape)
        crop_h, crop_w = self.crop_size
        scale = rng.uniform(*self.scale_range) if self.scale_range[1] > self.scale_range[0] else self.scale_range[0]
        # Resize so the image covers the crop in both directions, keeping the aspect ratio.
        h, w = labels.shape
        factor = max(crop_h / h, crop_w / w) * scale
        new_h, new_w = max(crop_h, math.ceil(h * factor)), max(crop_w, math.ceil(w * factor))
        if (new_h, new_w) != (h, w):
            image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
            labels = np.asarray(Image.fromarray(labels).resize((new_w, new_h), Image.NEAREST))
            if instances is not None:  # the same nearest sampling as the labels (PIL, 32-bit ids)
                instances = np.asarray(Image.fromarray(instances).resize((new_w, new_h), Image.NEAREST))
        top = int(rng.integers(0, new_h - crop_h + 1))
        left = int(rng.integers(0, new_w - crop_w + 1))
        image = image[top : top + crop_h, left : left + crop_w]
        labels = labels[top : top + crop_h, left : left + crop_w]
        if instances is not None:
            instances = instances[top : top + crop_h, left : left + crop_w]
        if self.flip and rng.random() < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]
            instances = None if instances is None else instances[:, ::-1]
        # Drawn after the geometric choices, so a run without recolouring sees exactly the crops it always did.
        image = recolour_classes(image, labels, rng, self.class_recolour, self.class_recolour_prob,
                                 self.label_space.ignore_index)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),  # uint8 [3,H,W]
            "label": torch.from_numpy(np.ascontiguousarray(labels)).long(),  # [H,W], ignore = 255
            "index": index,
        }
        if instances is not None:  # edges of the final crop (SPADE: after every geometric transform)
            item["edges"] = torch.from_numpy(instance_edges(np.ascontiguousarray(instances)))[None]  # float [1,H,W]
        return item


def find_instance_paths(data_root: str | os.PathLike, pairs: Sequence[tuple], dataset_format: str, split: str,
                        instance_dir: str | os.PathLike | None = None) -> list:
    """The instance map of every ``(image, label map)`` pair, found as the readers find them.

    Raises:
        LabelMapError: naming the first label map without an instance map, the path looked for and how many lack
            one.
    """
    from dpsims_aug.data.readers import find_label_maps

    refs = {ref.path: ref for ref in find_label_maps(data_root, dataset_format=dataset_format, split=split,
                                                     instance_dir=instance_dir)}
    paths = [refs[label].instance_path for _, label in pairs]
    missing = [label for (_, label), path in zip(pairs, paths) if path is None]
    if missing:
        ref = refs[missing[0]]
        count = f" ({len(missing)} of {len(pairs)} label maps have none)" if len(missing) > 1 else ""
        raise missing_instance_map(ref.name, ref.expected_instance_path, NO_INSTANCE_HINT + count)
    return paths


@DATA_SAMPLERS.register_module()
class EpochSeededSampler(Sampler[int]):
    """Infinite, rank-partitioned shuffling sampler that yields *virtual* indices ``epoch * N + i``.

    The dataset seeds each sample's augmentation with the virtual index, so epoch ``e`` sees fresh augmentations
    while every run (any worker count, any resume point) sees the same stream.
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int = 0) -> None:
        self.size = len(dataset)
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = get_dist_info()

    def __iter__(self) -> Iterator[int]:
        epoch = 0
        while True:
            if self.shuffle:
                order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch))
            else:
                order = torch.arange(self.size)
            # Each rank takes every world_size-th sample; padding keeps ranks in lockstep for small sets.
            per_rank = math.ceil(self.size / self.world_size)
            order = order.repeat(math.ceil(per_rank * self.world_size / self.size))[: per_rank * self.world_size]
            for i in order[self.rank :: self.world_size].tolist():
                yield epoch * self.size + i
            epoch += 1

    def __len__(self) -> int:
        return math.ceil(self.size / self.world_size)
