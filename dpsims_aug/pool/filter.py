"""``dpsims-aug filter``: FreeMask's recipe for a synthetic pool (Yang et al., NeurIPS 2023).

A segmenter trained on the real images measures how hard each class is: its mean pixel cross-entropy on the real
training set, per class. Then, for the pool that ``generate`` wrote:

* **pixel filtering**: every synthetic pixel of class ``c`` whose loss exceeds ``margin x class_loss[c]`` becomes
  unlabeled in a filtered copy of the pool's annotations (the segmenter finds that part of the image implausible
  for its label, so the pair would teach it noise). Classes the real set does not contain keep all their pixels.
* **hardness-aware resampling** (``resample=True``): label maps ranked by hardness (the mean class loss over their
  pixels) get a linearly rising number of the pool's images, 1 for the easiest up to all ``N`` for the hardest,
  so the synthetic budget goes where the segmenter is weak.

The output folder holds ``annotations/`` (the filtered copies, same relative paths as in the pool), ``samples.txt``
(the chosen samples: mmseg's ``ann_file``), ``dataset_config.py`` (a ``BaseSegDataset`` reading the pool's images
with these annotations), ``class_losses.json``, ``filter.jsonl`` (one line per finished image: kept fraction, per-
class counts) and ``filter.json`` (parameters and totals). The pool itself is never modified. Every file is written
atomically and a re-run with the same parameters does only what is missing.

Splits: the pool must come from training label maps, and the class losses from the real training split; a pool of
validation maps or statistics of validation images would carry the validation split into training. The output
records the pool's split (``source_split.json``) like the pool itself.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from dpsims_aug.data.readers import find_pairs, read_rgb
from dpsims_aug.data.splits import TRAIN, SplitLeakError, canonical_split, check_trainable, record_splits
from dpsims_aug.fileio import atomic_write_text
from dpsims_aug.label_maps import read_label_map, write_label_map
from dpsims_aug.labels import LabelMapError, LabelSpace
from dpsims_aug.locking import output_lock
from dpsims_aug.pool.format import (
    MANIFEST,
    ManifestWriter,
    dataset_config_text,
    read_manifest_records,
    reduce_zero_label_of,
)

CLASS_LOSSES = "class_losses.json"
FILTER_MANIFEST = "filter.jsonl"
SUMMARY = "filter.json"
SAMPLES = "samples.txt"
DEFAULT_MARGIN = 1.25  # FreeMask's default


class FilterError(RuntimeError):
    """A pool, real dataset or output folder that ``filter`` cannot work with (the message names it)."""


@dataclass
class FilterSummary:
    """What :func:`filter_pool` did."""

    out: Path
    images_selected: int  # pool images in the filtered set
    images_pool: int  # pool images in all
    filtered_now: int  # images filtered by this call (the rest were done by an earlier run)
    kept_fraction: float  # labelled synthetic pixels kept, over the selected images
    class_loss: list[float | None]  # mean real pixel loss per class (None: absent from the real set)
    images_per_map: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def dataset_config(self) -> Path:
        """The mmseg dataset config of the filtered pool."""
        return self.out / "dataset_config.py"


def _read_rgb(path: Path) -> np.ndarray:
    try:
        return read_rgb(path)
    except ValueError as err:
        raise FilterError(str(err)) from err


def _inside(root: Path, relative: str, what: str) -> Path:
    """``root / relative`` for a relative posix path that stays inside ``root``; else a named error."""
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise FilterError(f"{root}: {what} path {relative!r} is not a relative path inside the folder")
    return root.joinpath(*rel.parts)


def _contiguous(space: LabelSpace, raw: np.ndarray, source: Path, num_classes: int) -> np.ndarray:
    labels = space.to_contiguous(raw, source)
    present = np.unique(labels)
    too_big = present[(present >= num_classes) & (present != space.ignore_index)]
    if too_big.size:
        raise FilterError(f"{source}: classes {too_big.tolist()} are beyond the segmenter's {num_classes} classes")
    return labels


def class_mean_losses(segmenter, pairs: Sequence[tuple[Path, Path]], space: LabelSpace, batch_size: int = 16,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean pixel cross-entropy of ``segmenter`` per class over the real ``(image, label map)`` pairs.

    Returns ``(mean_loss, pixels)``: ``[C]`` float64 (``nan`` for classes no real pixel has) and ``[C]`` int64.
    """
    c = segmenter.num_classes
    total, count = np.zeros(c, np.float64), np.zeros(c, np.int64)
    batches = [pairs[i : i + batch_size] for i in range(0, len(pairs), batch_size)]
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, unit="batch", desc="class losses (real)")
    for batch in batches:
        try:
            labels = [_contiguous(space, read_label_map(label), label, c) for _, label in batch]
        except LabelMapError as err:
            raise FilterError(str(err)) from err
        images = [_read_rgb(image) for image, _ in batch]
        for (image, _), rgb, lab in zip(batch, images, labels):
            if rgb.shape[:2] != lab.shape:
                raise FilterError(f"{image}: image is {rgb.shape[1]}x{rgb.shape[0]} but its label map is "
                                  f"{lab.shape[1]}x{lab.shape[0]}")
        for loss, lab in zip(segmenter.pixel_losses(images, labels, space.ignore_index), labels):
            valid = lab != space.ignore_index
            np.add.at(total, lab[valid].astype(np.int64), loss[valid].astype(np.float64))
            count += np.bincount(lab[valid].astype(np.int64), minlength=c)[:c]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean, count


def map_hardness(labels: np.ndarray, class_loss: np.ndarray, ignore_index: int) -> float:
    """Mean class loss over a label map's pixels (classes without a loss left out; 0 if none is left)."""
    ids = labels[labels != ignore_index].astype(np.int64)
    losses = class_loss[ids]
    losses = losses[np.isfinite(losses)]
    return float(losses.mean()) if losses.size else 0.0


def hardness_counts(hardness: dict[str, float], n_max: int) -> dict[str, int]:
    """Images per label map from their hardness rank: 1 for the easiest, ``n_max`` for the hardest, linear
    in between (ties broken by key, so the result does not depend on the order of the input)."""
    order = sorted(hardness, key=lambda k: (hardness[k], k))
    if len(order) == 1:
        return {order[0]: n_max}
    return {key: 1 + round((n_max - 1) * rank / (len(order) - 1)) for rank, key in enumerate(order)}


def filter_mask(loss: np.ndarray, labels: np.ndarray, class_loss: np.ndarray, margin: float,
                ignore_index: int) -> np.ndarray:
    """True where a labelled pixel's loss exceeds ``margin x class_loss[its class]`` (the pixels to drop)."""
    valid = labels != ignore_index
    threshold = np.full(labels.shape, np.inf)
    threshold[valid] = margin * class_loss[labels[valid].astype(np.int64)]
    threshold[~np.isfinite(threshold)] = np.inf  # classes absent from the real set: no evidence, keep
    return valid & (loss > threshold)


def _ignore_raw(space: LabelSpace) -> int:
    return space.raw_ignore[0] if space.raw_ignore else space.ignore_index


def _load_lines(path: Path) -> dict[str, dict]:
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
                done[rec["annotation"]] = rec
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line: that image is filtered again
    return done


def filter_pool(
    pool: str | os.PathLike,
    real: str | os.PathLike,
    seg_config: str | os.PathLike,
    seg_checkpoint: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    dataset_format: str = "auto",
    split: str = "train",
    margin: float | None = DEFAULT_MARGIN,
    resample: bool = False,
    device: str = "cpu",
    batch_size: int = 16,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> FilterSummary:
    """Filter (and optionally resample) the ``generate`` pool at ``pool``; see the module docstring.

    Args:
        pool: Folder written by ``dpsims-aug generate`` (``manifest.jsonl``, ``labels.json``).
        real: Root of the real training dataset the segmenter was trained on (read with ``dataset_format`` / ``split``).
        seg_config: mmseg config of the segmenter; its class ``c`` must be contiguous class ``c`` of the pool's
            label space.
        seg_checkpoint: Its trained weights (loaded with ``weights_only=True``).
        out: Output folder (default: ``<pool>_filtered``).
        margin: Loss margin of the pixel filter; ``None`` keeps every pixel (resampling only).
        resample: Choose the number of images per label map by hardness (else every pool image is kept).

    Raises:
        FilterError: naming the file or folder, for a pool without a manifest, unreadable inputs, or an output
            folder made with other parameters.
        SplitLeakError: for a pool made from validation/test label maps, or ``split`` other than the training split.
    """
    started = time.perf_counter()
    job = PoolFilter(pool, real, seg_config, seg_checkpoint, out, dataset_format=dataset_format, split=split,
                     margin=margin, resample=resample, device=device, batch_size=batch_size, progress=progress,
                     log=log)
    job.check_inputs()
    with output_lock(job.out, "dpsims-aug filter"):  # one writer per folder (creates it)
        job.open_output()
        job.load_segmenter()
        job.measure_class_losses()
        job.select()
        job.filter_annotations()
        return job.finish(started)


class PoolFilter:
    """The stages of :func:`filter_pool`, in order: inputs checked, output folder opened (its parameters recorded
    or compared), the segmenter loaded, class losses on the real set (cached), the pool images selected (all, or
    by hardness), their annotations filtered (resumable), the sample list, dataset config and summary written."""

    def __init__(self, pool, real, seg_config, seg_checkpoint, out, *, dataset_format: str, split: str,
                 margin: float | None, resample: bool, device: str, batch_size: int, progress: bool,
                 log: Callable[[str], None]) -> None:
        self.pool = Path(pool).resolve()
        self.out = Path(out).resolve() if out is not None else self.pool.with_name(self.pool.name + "_filtered")
        self.real, self.seg_config, self.seg_checkpoint = real, seg_config, seg_checkpoint
        self.dataset_format, self.split, self.margin, self.resample = dataset_format, split, margin, resample
        self.device, self.batch_size, self.progress, self.log = device, batch_size, progress, log

    def check_inputs(self) -> None:
        """Refuse bad parameters, a pool that is not finished or not training data, and missing inputs, before
        anything is written."""
        pool, out = self.pool, self.out
        if self.margin is not None and not self.margin > 0:
            raise FilterError(f"margin must be > 0 (or None to keep every pixel), got {self.margin}")
        if not (pool / MANIFEST).is_file():
            raise FilterError(f"{pool}: no {MANIFEST}; is it a finished `dpsims-aug generate` folder?")
        if out == pool:
            raise FilterError(f"{out}: the output folder must not be the pool itself (the pool is never modified)")
        try:
            self.pool_splits = check_trainable(pool, "dpsims-aug filter") or ["unknown"]
        except ValueError as err:
            if isinstance(err, SplitLeakError):
                raise
            raise FilterError(str(err)) from err
        if canonical_split(self.split) != TRAIN:
            raise SplitLeakError(f"dpsims-aug filter: --split {self.split!r}: the class losses must come from the "
                                 "real training split (the filtered pool is training data; statistics of validation "
                                 "images must not reach it)")
        try:
            self.space = LabelSpace.load(pool / "labels.json")
        except (OSError, ValueError) as err:
            raise FilterError(f"{pool / 'labels.json'}: cannot read the pool's label space ({err})") from err
        self.records = sorted(read_manifest_records(pool).values(), key=lambda r: (r["key"], int(r["k"])))
        if not self.records:
            raise FilterError(f"{pool / MANIFEST}: lists no images")
        if not Path(self.seg_checkpoint).is_file():
            raise FilterError(f"segmenter checkpoint not found: '{self.seg_checkpoint}'")
        self.pairs = find_pairs(self.real, dataset_format=self.dataset_format, split=self.split)
        if not self.pairs:
            raise FilterError(f"{self.real}: no (image, label map) pairs for split {self.split!r} "
                              f"(dataset format {self.dataset_format!r})")

    def open_output(self) -> None:
        """Record the pool's split and the parameters in the output folder, or refuse one made with others."""
        from dpsims_aug.checkpoint import file_sha256

        self.params = dict(pool=str(self.pool), real=str(Path(self.real).resolve()), split=self.split,
                           dataset_format=self.dataset_format, seg_config=str(Path(self.seg_config).resolve()),
                           seg_checkpoint_sha256=file_sha256(self.seg_checkpoint), margin=self.margin,
                           resample=self.resample)
        record_splits(self.out, self.pool_splits, self.pool)
        params_path = self.out / "params.json"
        if params_path.is_file():
            previous = json.loads(params_path.read_text())
            if "layout" in previous and "dataset_format" not in previous:  # written before the rename
                previous["dataset_format"] = previous.pop("layout")
            if previous != self.params:
                changed = sorted(k for k in self.params if previous.get(k) != self.params[k])
                raise FilterError(f"{self.out}: made with other parameters ({', '.join(changed)} differ); choose "
                                  "another output folder or delete it")
        else:
            atomic_write_text(params_path, json.dumps(self.params, indent=1) + "\n")

    def load_segmenter(self) -> None:
        from dpsims_aug.mm.segmenter import Segmenter

        self.segmenter = Segmenter.from_files(self.seg_config, self.seg_checkpoint, device=self.device)
        self.num_classes = self.segmenter.num_classes
        if self.num_classes != self.space.num_classes:
            raise FilterError(f"{self.seg_config}: the segmenter has {self.num_classes} classes but the pool's "
                              f"label space {self.space.name!r} has {self.space.num_classes}")

    def measure_class_losses(self) -> None:
        """Class-wise mean loss on the real training set (cached in the output: the slow part on a big dataset)."""
        losses_path = self.out / CLASS_LOSSES
        if losses_path.is_file():
            cached = json.loads(losses_path.read_text())
            self.class_loss = np.array([np.nan if v is None else v for v in cached["class_loss"]], np.float64)
            return
        self.log(f"class losses of the segmenter on {len(self.pairs)} real images")
        self.class_loss, pixels = class_mean_losses(self.segmenter, self.pairs, self.space, self.batch_size,
                                                    self.progress)
        atomic_write_text(losses_path, json.dumps(dict(
            class_names=list(self.space.class_names),
            class_loss=[None if not math.isfinite(v) else round(float(v), 6) for v in self.class_loss],
            real_pixels=pixels.tolist(), real_images=len(self.pairs)), indent=1) + "\n")

    def _labels(self, ann: Path) -> np.ndarray:
        try:
            return _contiguous(self.space, read_label_map(ann), ann, self.num_classes)
        except LabelMapError as err:
            raise FilterError(str(err)) from err

    def select(self) -> None:
        """Which pool images: all, or a hardness-ranked number per label map (``resample``)."""
        by_key: dict[str, list[dict]] = {}
        for rec in self.records:
            by_key.setdefault(rec["key"], []).append(rec)
        if self.resample:
            n_max = min(len(v) for v in by_key.values())
            hardness = {key: map_hardness(self._labels(_inside(self.pool, recs[0]["annotation"], "annotation")),
                                          self.class_loss, self.space.ignore_index)
                        for key, recs in by_key.items()}
            self.counts = hardness_counts(hardness, n_max)
        else:
            self.counts = {key: len(recs) for key, recs in by_key.items()}
        self.selected = [rec for key, recs in by_key.items() for rec in recs[: self.counts[key]]]

    def filter_annotations(self) -> None:
        """Write the filtered annotation of every selected image not yet done (``filter.jsonl`` lists what is)."""
        manifest_path = self.out / FILTER_MANIFEST
        done = _load_lines(manifest_path)
        self.todo = [r for r in self.selected
                     if r["annotation"] not in done or not _inside(self.out, r["annotation"], "annotation").is_file()]
        if not self.todo:
            return
        self.log(f"filtering {len(self.todo)} of {len(self.selected)} selected pool images "
                 f"({len(self.selected) - len(self.todo)} done)")
        from tqdm import tqdm

        with ManifestWriter(manifest_path) as manifest, tqdm(
                total=len(self.todo), unit="img", desc="filter", disable=not self.progress) as bar:
            for start in range(0, len(self.todo), self.batch_size):
                batch = self.todo[start : start + self.batch_size]
                manifest.append(self._filter_batch(batch))
                bar.update(len(batch))

    def _filter_batch(self, batch: list[dict]) -> list[dict]:
        """Filter one batch of pool images; their ``filter.jsonl`` lines."""
        space = self.space
        images, labels = [], []
        for rec in batch:
            image, ann = _inside(self.pool, rec["image"], "image"), _inside(self.pool, rec["annotation"], "annotation")
            labels.append(self._labels(ann))
            images.append(_read_rgb(image))
            if images[-1].shape[:2] != labels[-1].shape:
                raise FilterError(f"{image}: image and annotation sizes differ")
        if self.margin is None:  # resampling only: keep every pixel
            drops = [np.zeros(lab.shape, bool) for lab in labels]
        else:
            losses = self.segmenter.pixel_losses(images, labels, space.ignore_index)
            drops = [filter_mask(loss, lab, self.class_loss, self.margin, space.ignore_index)
                     for loss, lab in zip(losses, labels)]
        lines = []
        for rec, lab, drop in zip(batch, labels, drops):
            valid = lab != space.ignore_index
            raw = space.to_raw(np.where(valid, lab, 0)).astype(np.int64)
            raw[~valid | drop] = _ignore_raw(space)
            write_label_map(_inside(self.out, rec["annotation"], "annotation"), raw)
            per_class = {}
            for cls in np.unique(lab[valid]).tolist():
                in_class = lab == cls
                per_class[str(cls)] = [int(in_class.sum()), int((in_class & drop).sum())]
            lines.append(dict(annotation=rec["annotation"], image=rec["image"], key=rec["key"], k=int(rec["k"]),
                              labelled=int(valid.sum()), dropped=int(drop.sum()), per_class=per_class))
        return lines

    def finish(self, started: float) -> FilterSummary:
        """The sample list, the dataset config and the summary."""
        space, out, selected = self.space, self.out, self.selected
        done = _load_lines(out / FILTER_MANIFEST)
        chosen = [done[r["annotation"]] for r in selected]
        names = [str(PurePosixPath(r["image"]).relative_to("images").with_suffix("")) for r in selected]
        atomic_write_text(out / SAMPLES, "".join(n + "\n" for n in names))
        img_suffix = PurePosixPath(selected[0]["image"]).suffix
        atomic_write_text(out / "dataset_config.py", dataset_config_text(
            out, space, img_suffix, bool(reduce_zero_label_of(space)), prefix="dpsims_filtered",
            images=self.pool / "images", ann_file=SAMPLES,
            what="the pool filtered by `dpsims-aug filter` (the pool's images, filtered annotations)"))
        labelled = sum(r["labelled"] for r in chosen)
        dropped = sum(r["dropped"] for r in chosen)
        per_class_total = np.zeros((self.num_classes, 2), np.int64)
        for r in chosen:
            for cls, (n, d) in r["per_class"].items():
                per_class_total[int(cls)] += (n, d)
        summary = FilterSummary(
            out=out, images_selected=len(selected), images_pool=len(self.records), filtered_now=len(self.todo),
            kept_fraction=1.0 - dropped / max(labelled, 1),
            class_loss=[None if not math.isfinite(v) else float(v) for v in self.class_loss],
            images_per_map=dict(sorted(self.counts.items())), seconds=time.perf_counter() - started)
        atomic_write_text(out / SUMMARY, json.dumps(dict(
            self.params, images_selected=summary.images_selected, images_pool=summary.images_pool,
            kept_fraction=round(summary.kept_fraction, 4),
            kept_fraction_per_class={space.class_names[i]: round(1 - d / n, 4) for i, (n, d) in
                                     enumerate(per_class_total.tolist()) if n},
            class_loss={space.class_names[i]: (None if v is None else round(v, 4)) for i, v in
                        enumerate(summary.class_loss)},
            images_per_map=summary.images_per_map), indent=1) + "\n")
        return summary
