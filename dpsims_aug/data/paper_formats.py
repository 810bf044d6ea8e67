"""Stand-in datasets in the paper datasets' real on-disk formats, at their real image sizes.

The embedded scenes (:mod:`dpsims_aug.data.writers`) are 64..128 px and have 10 classes; the paper configs
(``train_gan/configs/{ade20k,coco_stuff,cityscapes}.py``, ``augment/{ade20k,coco_stuff,cityscapes}/``) read ADE-20K,
COCO-Stuff 164k and Cityscapes as they come from their publishers (and from mmseg's converters). This module writes a
handful of image / label pairs in exactly those formats, file names, id conventions and sizes, so the whole paper path
(trainer, ``generate``, mmseg datasets, ``DPSIMSAugment``) can run at true size without the real data:

* ``ade20k`` (the ``ADEChallengeData2016`` folder): ``images/{training,validation}/ADE_{train,val}_%08d.jpg`` and
  ``annotations/{training,validation}/ADE_*_%08d.png``, 8-bit ids 0 (unlabeled) .. 150; images of varied sizes
  around 512 px (683x512, 512x683, 512x384, 512x512).
* ``coco_stuff`` (``coco_stuff164k`` as mmseg's ``tools/dataset_converters/coco_stuff164k.py`` leaves it):
  ``images/{train2017,val2017}/%012d.jpg``, ``annotations/{train2017,val2017}/%012d.png`` (stuffthingmaps: raw ids
  0..181, 255 unlabeled) and, next to each, ``%012d_labelTrainIds.png`` (mmseg's 171 train ids, 255 unlabeled).
  The 11 thing ids COCO never annotates (:data:`~dpsims_aug.labels.COCO_UNUSED_RAW_IDS`) do not occur, as in the
  real maps; every other id does. Instances as COCO's panoptic PNGs unzipped into the dataset:
  ``annotations/panoptic_{train,val}2017/%012d.png`` (RGB, segment id ``R + 256 G + 256^2 B``, 0 void; one segment
  per cell of a thing class 0..90, one per stuff class). Images 640x480, 427x640, 640x427, 480x640.
* ``cityscapes``: ``leftImg8bit/{train,val}/<city>/<city>_%06d_%06d_leftImg8bit.png`` (2048x1024) and
  ``gtFine/{train,val}/<city>/..._gtFine_{labelIds,labelTrainIds,instanceIds,color}.png`` + ``_polygons.json``:
  labelIds 0..33 (and 34, license plate, which the 35-class label space has), trainIds 0..18 / 255, instanceIds
  16-bit (``labelId * 1000 + k`` for the instance classes 24..33, ``labelId`` elsewhere), the colour rendering and a
  minimal polygon file (the converters' inputs; no reader here uses it).

Content: random Voronoi cells (computed on a 1/4 grid, so cells have ragged 4 px steps), each one class; the classes
of a split are a shuffled cycle through the whole label space, so every class occurs in every split that has enough
cells (:func:`cells_needed`). Images are a cheap function of the labels: a per-class colour, a per-cell shade and
Gaussian noise. Deterministic in ``seed``.

Use :func:`write_paper_dataset` from Python, or ``python -m dpsims_aug.data.paper_formats --dataset ade20k --out
DIR``. Nothing here needs mmseg.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dpsims_aug.fileio import atomic_path, atomic_write_text
from dpsims_aug.label_maps import write_label_map
from dpsims_aug.labels import (
    COCO_UNUSED_RAW_IDS,
    LabelSpace,
    get_label_space,
)

PAPER_DATASETS = ("ade20k", "coco_stuff", "cityscapes")

# (height, width) of the images, cycled through per split.
SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "ade20k": ((512, 683), (683, 512), (384, 512), (512, 512)),
    "coco_stuff": ((480, 640), (640, 427), (427, 640), (640, 480)),
    "cityscapes": ((1024, 2048),),
}
# The folder name each dataset's root has in the shipped configs (data/ade/ADEChallengeData2016, ...).
ROOT_NAMES = {"ade20k": "ADEChallengeData2016", "coco_stuff": "coco_stuff164k", "cityscapes": "cityscapes"}
# The label space of the GAN config (train_gan/configs/<name>.py) and of mmseg's dataset class.
GAN_LABEL_SPACES = {"ade20k": "ade20k", "coco_stuff": "coco_stuff182", "cityscapes": "cityscapes"}
MMSEG_LABEL_SPACES = {"ade20k": "ade20k", "coco_stuff": "coco_stuff171", "cityscapes": "cityscapes19"}
CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt", "lindau")}
COCO_THING_IDS = range(0, 91)  # stuffthingmaps ids of the thing classes (COCO category id - 1); 91..181 are stuff
CITYSCAPES_INSTANCE_IDS = tuple(range(24, 34))  # person .. bicycle: the classes with instances (hasInstances)
UNLABELED_SHARE = 0.03  # about this share of the cells is unlabeled (ADE 0, COCO 255); Cityscapes has class 0
GRID = 4  # Voronoi cells are computed on a 1/GRID grid


def raw_class_ids(dataset: str) -> list[int]:
    """The raw ids the stand-in data holds as classes (every one occurs in a split with enough cells)."""
    space = get_label_space(GAN_LABEL_SPACES[dataset])
    ids = list(space.raw_ids)
    if dataset == "coco_stuff":
        ids = [r for r in ids if r not in COCO_UNUSED_RAW_IDS]  # never annotated in the real stuffthingmaps
    return ids


def unlabeled_raw_id(dataset: str) -> int | None:
    """The raw id of unlabeled pixels (None for Cityscapes, whose id 0 'unlabeled' is one of the 35 classes)."""
    return {"ade20k": 0, "coco_stuff": 255, "cityscapes": None}[dataset]


def cells_needed(dataset: str) -> int:
    """Voronoi cells a split needs in all so that every class occurs in it."""
    return len(raw_class_ids(dataset))


def _voronoi(height: int, width: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Cell index per pixel ([H, W] int32) of ``cells`` random seeds, nearest seed on a 1/GRID grid."""
    gh, gw = math.ceil(height / GRID), math.ceil(width / GRID)
    # Distinct grid points as seeds, so that every cell owns at least its seed's GRID x GRID block.
    flat = rng.choice(gh * gw, size=min(cells, gh * gw), replace=False)
    sy, sx = (flat // gw).astype(np.float32), (flat % gw).astype(np.float32)
    ys = np.arange(gh, dtype=np.float32)[:, None, None]
    xs = np.arange(gw, dtype=np.float32)[None, :, None]
    owner = np.empty((gh, gw), dtype=np.int32)
    for start in range(0, gh, 64):  # rows in chunks: [64, gw, cells] distances at a time
        d = (ys[start:start + 64] - sy) ** 2 + (xs - sx) ** 2
        owner[start:start + 64] = d.argmin(axis=2)
    return owner.repeat(GRID, 0).repeat(GRID, 1)[:height, :width]


def _class_colours(num: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 7])
    return rng.integers(30, 226, size=(num, 3)).astype(np.float32)


def render_image(raw: np.ndarray, cell: np.ndarray, colours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 image of a label map: the class colour (``colours[raw]``), a shade per cell, Gaussian noise."""
    shade = rng.uniform(-25, 25, size=(int(cell.max()) + 1, 1)).astype(np.float32)
    image = colours[raw.astype(np.int64)] + shade[cell]
    image += rng.normal(0.0, 8.0, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).round().astype(np.uint8)


def _save_rgb(path: Path, image: np.ndarray, fmt: str) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        if fmt == "JPEG":
            Image.fromarray(image).save(tmp, format="JPEG", quality=90)
        else:
            Image.fromarray(image).save(tmp, format="PNG", compress_level=1)


def _save_png16(path: Path, ids: np.ndarray) -> None:
    """A 16-bit grayscale PNG whatever the values (Cityscapes' instanceIds are 16-bit even without instances)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(ids.astype(np.uint16)).save(tmp, format="PNG")


def _names(dataset: str, split: str, i: int) -> tuple[str, str]:
    """(file stem, city or '') of image ``i`` of a split."""
    if dataset == "ade20k":
        return f"ADE_{'train' if split == 'train' else 'val'}_{i + 1:08d}", ""
    if dataset == "coco_stuff":
        return f"{(139 if split == 'val' else 9) + 1000 * i:012d}", ""
    city = CITIES[split][i % len(CITIES[split])]
    return f"{city}_{i:06d}_{19:06d}", city


def _split_maps(dataset: str, n: int, cells_per_image: int, sizes: Sequence[tuple[int, int]],
                rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (raw label map, cell index) pairs whose labelled cells cycle through the whole label space (a new
    shuffle per pass); about :data:`UNLABELED_SHARE` of the cells (at least one per image) are unlabeled, on top."""
    classes = np.array(raw_class_ids(dataset))
    unlabeled = unlabeled_raw_id(dataset)
    cycle: list[int] = []
    out = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        cell = _voronoi(h, w, cells_per_image, rng)
        k = int(cell.max()) + 1
        blank = max(1, round(UNLABELED_SHARE * k)) if unlabeled is not None else 0
        while len(cycle) < k - blank:
            cycle.extend(rng.permutation(classes).tolist())
        cell_class = np.array(cycle[:k - blank] + [unlabeled] * blank, dtype=np.int64)
        del cycle[:k - blank]
        cell_class = cell_class[rng.permutation(k)]  # the unlabeled cells anywhere
        out.append((cell_class[cell], cell))
    return out


def write_paper_dataset(root: str | os.PathLike, dataset: str, n_train: int = 2, n_val: int = 2, seed: int = 0,
                        cells_per_image: int | None = None,
                        sizes: Sequence[tuple[int, int]] | None = None) -> dict:
    """Write ``n_train`` + ``n_val`` image / label pairs of ``dataset`` (:data:`PAPER_DATASETS`) into ``root``
    (the dataset root the configs' ``data_root`` names, e.g. ``.../ADEChallengeData2016``).

    Args:
        root: Output folder (created; files already there with the same names are replaced).
        dataset: ``'ade20k'``, ``'coco_stuff'`` or ``'cityscapes'``.
        n_train: Training pairs.
        n_val: Validation pairs.
        seed: Seed of cells, classes and pixels.
        cells_per_image: Voronoi cells per image; default: enough for every class to occur in the training split
            (at least 24).
        sizes: ``(height, width)`` per image, cycled (default :data:`SIZES`, the dataset's real sizes).

    Returns:
        A summary: root, dataset, files per split, classes occurring per split, sizes.
    """
    if dataset not in PAPER_DATASETS:
        raise ValueError(f"unknown paper dataset {dataset!r}; use one of {PAPER_DATASETS}")
    if n_train < 1 or n_val < 0:
        raise ValueError(f"need n_train >= 1 and n_val >= 0, got {n_train} and {n_val}")
    root = Path(root)
    sizes = tuple(tuple(int(v) for v in s) for s in (sizes or SIZES[dataset]))
    if cells_per_image is None:
        cells_per_image = max(24, math.ceil(1.1 * cells_needed(dataset) / n_train) + 2)
    gan_space = get_label_space(GAN_LABEL_SPACES[dataset])
    mmseg_space = get_label_space(MMSEG_LABEL_SPACES[dataset])
    colours = _class_colours(256, seed)
    summary: dict = {"dataset": dataset, "root": str(root), "seed": seed, "cells_per_image": cells_per_image,
                     "splits": {}}
    for split, n in (("train", n_train), ("val", n_val)):
        rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        present: set[int] = set()
        files = []
        for i, (raw, cell) in enumerate(_split_maps(dataset, n, cells_per_image, sizes, rng)):
            gan_space.to_contiguous(raw)  # every id is one the GAN's label space knows
            present.update(int(v) for v in np.unique(raw))
            image = render_image(raw, cell, colours, rng)
            stem, city = _names(dataset, split, i)
            written = _write_pair(root, dataset, split, stem, city, image, raw, cell, mmseg_space, gan_space)
            files.append({"image": written[0], "labels": written[1:], "size_hw": list(raw.shape)})
        unlabeled = unlabeled_raw_id(dataset)
        summary["splits"][split] = {
            "files": files,
            "classes_present": len(present - {unlabeled}),
            "classes_missing": sorted(set(raw_class_ids(dataset)) - present),
        }
    summary["classes"] = len(raw_class_ids(dataset))
    return summary


def _write_pair(root: Path, dataset: str, split: str, stem: str, city: str, image: np.ndarray, raw: np.ndarray,
                cell: np.ndarray, mmseg_space: LabelSpace, gan_space: LabelSpace) -> list[str]:
    """Write one image and its label files; returns their paths relative to ``root``."""
    if dataset == "ade20k":
        folder = "training" if split == "train" else "validation"
        paths = [root / "images" / folder / f"{stem}.jpg", root / "annotations" / folder / f"{stem}.png"]
        _save_rgb(paths[0], image, "JPEG")
        write_label_map(paths[1], raw)
    elif dataset == "coco_stuff":
        folder = f"{split}2017"
        ann = root / "annotations" / folder
        paths = [root / "images" / folder / f"{stem}.jpg", ann / f"{stem}.png", ann / f"{stem}_labelTrainIds.png",
                 root / "annotations" / f"panoptic_{folder}" / f"{stem}.png"]
        _save_rgb(paths[0], image, "JPEG")
        write_label_map(paths[1], raw)
        write_label_map(paths[2], mmseg_space.to_contiguous(raw))  # what mmseg's converter writes
        thing = np.isin(raw, COCO_THING_IDS)
        segment = np.where(thing, 1000 * (raw + 1) + cell % 1000, 1000 * (raw + 1))  # stuff: one per class
        segment = np.where(raw == 255, 0, segment).astype(np.int64)  # unlabeled: void
        rgb = np.stack([segment % 256, segment // 256 % 256, segment // 65536], axis=-1).astype(np.uint8)
        _save_rgb(paths[3], rgb, "PNG")
    else:
        gt = root / "gtFine" / split / city
        paths = [root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                 *(gt / f"{stem}_gtFine_{kind}.png" for kind in ("labelIds", "labelTrainIds", "instanceIds", "color"))]
        _save_rgb(paths[0], image, "PNG")
        write_label_map(paths[1], raw)
        write_label_map(paths[2], mmseg_space.to_contiguous(raw))  # labelIds -> trainIds, the rest 255
        is_instance = np.isin(raw, CITYSCAPES_INSTANCE_IDS)
        instances = np.where(is_instance, raw * 1000 + cell % 1000, raw)  # one instance per cell
        _save_png16(paths[3], instances)
        _save_rgb(paths[4], np.asarray(gan_space.palette, dtype=np.uint8)[raw], "PNG")
        polygons = root / "gtFine" / split / city / f"{stem}_gtFine_polygons.json"
        atomic_write_text(polygons, json.dumps({"imgHeight": int(raw.shape[0]), "imgWidth": int(raw.shape[1]),
                                                "objects": []}))
    return [p.relative_to(root).as_posix() for p in paths]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dpsims_aug.data.paper_formats",
        description="Write stand-in image/label pairs in a paper dataset's real on-disk format at its real size.")
    parser.add_argument("--dataset", required=True, choices=PAPER_DATASETS)
    parser.add_argument("--out", required=True, help="the dataset root to write (e.g. data/ade/ADEChallengeData2016)")
    parser.add_argument("--train", type=int, default=2, help="training pairs (default 2)")
    parser.add_argument("--val", type=int, default=2, help="validation pairs (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = write_paper_dataset(args.out, args.dataset, args.train, args.val, args.seed)
    for split, info in summary["splits"].items():
        print(f"{split}: {len(info['files'])} pairs, {info['classes_present']} of {summary['classes']} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
