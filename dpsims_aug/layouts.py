"""New label maps from the dataset's own: label-map augmentation before rendering (``dpsims-aug layouts``).

Photometric or geometric augmentation of a real (image, label) pair changes how a scene looks or where it sits, but
never what is in it. Rendering images for *new* label maps gives the segmenter layouts it has never seen, each with a
coherent image. :func:`augment_layout` makes one new map from a source map and donor maps of the same dataset:

1. **geometric**: horizontal flip (p=0.5) and a zoom: a random window of ``1/s`` of the side (``s`` in
   ``scale``) resized back to the map's size with nearest-neighbour sampling (ids are never blended);
2. **class-aware copy-paste**: up to ``max_pastes`` connected regions ("objects": between ``min_area`` and
   ``max_area`` of the image) cut from donor maps and pasted at the same height with a random horizontal shift
   (optionally mirrored), on top of what is there. Keeping the height keeps scene geometry plausible: what floats
   in the sky of its donor stays in the sky, what stands on the ground stays at ground level. ``paste_ids`` limits
   pasting to chosen raw ids (e.g. the "thing" classes).

Everything works on raw ids (what is on disk), so any label space works; ``ignore_ids`` (default 0 and 255,
mmseg's usual unlabeled values) are never cut as objects.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from dpsims_aug.data.readers import find_label_maps
from dpsims_aug.data.splits import TRAIN, record_splits, recorded_splits
from dpsims_aug.fileio import atomic_write_text
from dpsims_aug.label_maps import write_label_map
from dpsims_aug.labels import LabelMapError
from dpsims_aug.locking import output_lock


@dataclass(frozen=True)
class LayoutAugment:
    """Parameters of :func:`augment_layout` (see the module docstring)."""

    flip: bool = True
    scale: tuple[float, float] = (1.0, 1.5)
    max_pastes: int = 3
    paste_prob: float = 0.7  # probability of each of the max_pastes attempts
    min_area: float = 0.002
    max_area: float = 0.15
    paste_ids: tuple[int, ...] | None = None  # raw ids that may be pasted (None: any labelled id)
    ignore_ids: tuple[int, ...] = (0, 255)  # raw ids never cut as objects (mmseg's usual unlabeled values)


def _zoom(labels: np.ndarray, rng: np.random.Generator, scale: tuple[float, float]) -> np.ndarray:
    h, w = labels.shape
    s = rng.uniform(*scale)
    ch, cw = max(1, round(h / s)), max(1, round(w / s))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    rows = y0 + (np.arange(h) * ch // h)
    cols = x0 + (np.arange(w) * cw // w)
    return labels[rows[:, None], cols[None, :]]


def _objects(labels: np.ndarray, params: LayoutAugment) -> list[np.ndarray]:
    """Boolean masks of the connected regions of ``labels`` that may be pasted."""
    from scipy import ndimage

    area = labels.size
    masks = []
    for raw_id in np.unique(labels).tolist():
        if raw_id in params.ignore_ids or (params.paste_ids is not None and raw_id not in params.paste_ids):
            continue
        components, count = ndimage.label(labels == raw_id)
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        for c in range(1, count + 1):
            if params.min_area * area <= sizes[c] <= params.max_area * area:
                masks.append(components == c)
    return masks


def augment_layout(labels: np.ndarray, rng: np.random.Generator, donors: Sequence[np.ndarray] = (),
                   params: LayoutAugment = LayoutAugment()) -> np.ndarray:
    """One new label map (same shape and dtype, raw ids of ``labels`` and ``donors``); see the module docstring.

    ``donors`` of another size are resized to ``labels``' size (nearest) before their objects are cut.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map must be 2-D, got shape {labels.shape}")
    out = labels
    if params.flip and rng.random() < 0.5:
        out = out[:, ::-1]
    if params.scale[1] > 1.0:
        out = _zoom(out, rng, (max(1.0, params.scale[0]), params.scale[1]))
    out = np.array(out, copy=True)
    h, w = out.shape
    for _ in range(params.max_pastes if len(donors) else 0):
        if rng.random() >= params.paste_prob:
            continue
        donor = np.asarray(donors[int(rng.integers(len(donors)))])
        if donor.shape != out.shape:
            dh, dw = donor.shape
            donor = donor[(np.arange(h) * dh // h)[:, None], (np.arange(w) * dw // w)[None, :]]
        objects = _objects(donor, params)
        if not objects:
            continue
        mask = objects[int(rng.integers(len(objects)))]
        ids = donor
        if rng.random() < 0.5:
            mask, ids = mask[:, ::-1], ids[:, ::-1]
        cols = np.flatnonzero(mask.any(axis=0))
        shift = int(rng.integers(-cols[0], w - cols[-1]))  # the whole object stays inside the map
        mask, ids = np.roll(mask, shift, axis=1), np.roll(ids, shift, axis=1)
        out[mask] = ids[mask]
    return out


def layout_rng(seed: int, key: str, j: int) -> np.random.Generator:
    """The random stream of new layout ``j`` of the label map ``key`` (independent of order and sharding)."""
    digest = np.frombuffer(key.encode("utf-8"), dtype=np.uint8)
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(j), *digest.tolist()]))


@dataclass
class LayoutsSummary:
    """What :func:`write_layouts` did."""

    out: Path
    label_maps: int
    written: int
    already_done: int
    seconds: float


def write_layouts(labels: str | os.PathLike, k: int, out: str | os.PathLike, *, dataset_format: str = "auto",
                  split: str | None = TRAIN, seed: int = 0, params: LayoutAugment = LayoutAugment(),
                  donors: int = 8, progress: bool = True,
                  log: Callable[[str], None] = print) -> LayoutsSummary:
    """Write ``k`` new label maps per label map of the dataset at ``labels`` to ``out``.

    New map ``j`` of ``<stem>`` is ``out/<stem>_l<j>.png`` (a folder of label maps: ``generate --labels out
    --dataset-format bare`` renders images for them). ``dataset_format`` and ``split`` say how to read ``labels``
    (as in :func:`~dpsims_aug.data.readers.find_label_maps`). Donors for copy-paste are ``donors`` other maps of the
    dataset, drawn per new map, from the same split. Files are written atomically and a re-run writes only missing
    ones; the same seed gives the same maps. ``out`` records the split it was made from (``source_split.json``), so that
    ``generate`` and the training readers refuse a folder of validation layouts for training.

    Raises:
        LabelMapError: naming the file, for an unreadable label map.
        ValueError: for ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    started = time.perf_counter()
    out = Path(out)
    refs = find_label_maps(labels, dataset_format=dataset_format, split=split)
    if not refs:
        raise LabelMapError(labels, "no label maps found")
    splits = sorted({ref.split for ref in refs})
    with output_lock(out, "dpsims-aug layouts"):  # one writer per folder
        recorded = recorded_splits(out) if out.is_dir() else None
        if recorded is not None and recorded != splits:
            raise LabelMapError(out, f"holds layouts of the split(s) {', '.join(recorded)}, but this run reads "
                                     f"split(s) {', '.join(splits)}; use another --out (one folder per split)")
        record_splits(out, splits, labels)

        @functools.lru_cache(maxsize=256)  # donors are re-read often; a bounded cache keeps big datasets in memory
        def read(i: int) -> np.ndarray:
            return refs[i].read()

        written = done = 0
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(refs) * k, unit="map", desc="layouts")
        for i, ref in enumerate(refs):
            stem = PurePosixPath(ref.stem)
            if stem.is_absolute() or ".." in stem.parts:
                raise LabelMapError(ref.key, "output name would leave the output folder")
            for j in range(k):
                dst = out.joinpath(*stem.parent.parts, f"{stem.name}_l{j}.png")
                if dst.is_file():
                    done += 1
                else:
                    rng = layout_rng(seed, ref.key, j)
                    others = [x for x in rng.choice(len(refs), size=min(donors, len(refs)), replace=False).tolist()
                              if x != i]
                    new = augment_layout(read(i), rng, [read(x) for x in others], params)
                    write_label_map(dst, new)
                    written += 1
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        atomic_write_text(out / "layouts.txt", "".join(
            f"{ref.key} -> {PurePosixPath(ref.stem).as_posix()}_l0..{k - 1}.png\n" for ref in refs))
        log(f"{written} new label maps written, {done} were there already ({len(refs)} source maps x {k})")
        return LayoutsSummary(out=out, label_maps=len(refs), written=written, already_done=done,
                              seconds=time.perf_counter() - started)
