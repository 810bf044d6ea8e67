"""Write the embedded procedural scenes to disk in the dataset formats users' tools read.

Dataset formats (``root`` is the output folder; every format also gets ``labels.json`` and ``dataset.json``):

* ``ade20k``: ``images/{training,validation}/scene_000000.jpg`` and ``annotations/{...}/scene_000000.png``
  with ADE-style raw ids (0 = unlabeled, k+1 = class k); mmseg reads it with ``reduce_zero_label=True``.
* ``cityscapes``: ``leftImg8bit/{train,val}/scene/scene_000000_000019_leftImg8bit.png`` with
  ``gtFine/{train,val}/scene/scene_000000_000019_gtFine_labelIds.png`` (raw ids),
  ``..._gtFine_labelTrainIds.png`` (contiguous ids, 255 = unlabeled), what mmseg's Cityscapes loaders expect, and
  ``..._gtFine_instanceIds.png`` (16-bit, Cityscapes' convention: ``raw id * 1000 + k`` on the k-th object of a
  "thing" class (trees, rocks, buildings: the scene renderer draws them as separate objects), the raw id elsewhere).
* ``folder``: one plain pair ``images/<name>.png`` + ``labels/<name>.png`` (raw ids), names
  ``train_000000`` and ``val_000000``, plus ``splits/{train,val}.txt`` (basenames: mmseg's ``ann_file``).
* ``hf``: a Hugging Face ``datasets.DatasetDict`` (``train``/``validation``; columns ``image``, ``label``
  (PNG of raw ids), ``name``, ``layout_seed``, ``appearance_seed``) saved with ``save_to_disk(root)``.

Every file is written atomically (temporary file in the same folder, then ``os.replace``), so an interrupted
run leaves only whole files, and a re-run with the same parameters skips them (``dataset.json`` records the
parameters, the format under ``dataset_format``: older files have it under ``layout``, which is read too;
different parameters in a non-empty folder are refused unless ``overwrite=True``).

``domain`` picks the world the scenes come from (a key of :data:`dpsims_aug.data.scenes.DOMAINS`, default
``"source"``). Scene ``i`` of a split gets the same :func:`~dpsims_aug.data.scenes.scene_seeds` in every
domain: domains differ by their priors, not by their seed streams. A ``dataset.json`` without a ``domain``
key (written before domains existed) is a ``"source"`` dataset.

mmseg note: do not point ``ADE20KDataset``/``CityscapesDataset`` at these folders with our class names as
``metainfo``: mmseg then builds a label map from *its* class list, which refuses ("cloud" is not an ADE class)
or silently renumbers classes. Use :func:`dpsims_aug.data.mmseg_configs.mmseg_dataset_config` (a
``BaseSegDataset`` with the right suffixes).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dpsims_aug.data.mmseg_configs import mmseg_dataset_config
from dpsims_aug.data.scenes import (
    DEFAULT_DOMAIN,
    SCENES_VERSION,
    get_domain,
    render_scene,
    render_scene_with_instances,
    scene_seeds,
)
from dpsims_aug.fileio import atomic_path, atomic_write_text
from dpsims_aug.label_maps import write_label_map
from dpsims_aug.labels import LabelSpace, embedded_label_space

WRITABLE_FORMATS = ("ade20k", "cityscapes", "folder", "hf")
DATASET_INFO = "dataset.json"
LABELS_JSON = "labels.json"
FORMAT_VERSION = 1
_STREAMS = {"train": 0, "val": 1}  # scene_seeds stream per split: growing one split never changes the other

Progress = Callable[[int], None] | None


def _save_image(path: Path, image: np.ndarray, fmt: str, quality: int = 95) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        if fmt == "JPEG":
            Image.fromarray(image).save(tmp, format="JPEG", quality=quality)
        else:
            Image.fromarray(image).save(tmp, format="PNG", compress_level=3)


def _save_instance_ids(path: Path, ids: np.ndarray) -> None:
    """A 16-bit single-channel PNG (as Cityscapes' ``*_gtFine_instanceIds.png``), atomically."""
    from PIL import Image

    if ids.size and (ids.min() < 0 or ids.max() > 65535):
        raise ValueError(f"{path}: instance ids must lie in 0..65535")
    with atomic_path(path) as tmp:
        Image.fromarray(ids.astype(np.uint16)).save(tmp, format="PNG", compress_level=3)


def cityscapes_instance_ids(raw: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Cityscapes ``instanceIds`` of a scene: ``raw * 1000 + k`` on the pixels of the k-th object (k = 0, 1, ... in
    drawing order) of each class, the raw id where ``objects`` is 0 (stuff, unlabeled).

    Args:
        raw: ``H x W`` raw label ids.
        objects: ``H x W`` object index per pixel, 0 = no object (:func:`~dpsims_aug.data.scenes.
            render_scene_with_instances`).
    """
    out = np.asarray(raw).astype(np.int32)
    objects = np.asarray(objects)
    things = objects > 0
    for cls in np.unique(out[things]):
        of_class = things & (out == cls)
        for k, obj in enumerate(np.unique(objects[of_class])):
            out[of_class & (objects == obj)] = int(cls) * 1000 + k
    return out


def _encode(array: np.ndarray, fmt: str, quality: int = 95) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / DATASET_INFO).read_text())
    except (OSError, ValueError):
        return None


def _recorded_format(manifest: dict) -> str | None:
    """The dataset format a ``dataset.json`` records (files written before the rename call it ``layout``)."""
    return manifest.get("dataset_format", manifest.get("layout"))


def _begin(root: Path, dataset_format: str, size: tuple[int, int], seed: int, domain: str, overwrite: bool) -> bool:
    """Check ``root`` against an earlier run; returns True when existing files may be reused."""
    old = _read_manifest(root)
    if old is not None:
        old_domain = old.get("domain", DEFAULT_DOMAIN)  # manifests from before domains existed are source
        old_format = _recorded_format(old)
        same = (old_format == dataset_format and list(old.get("size", ())) == list(size)
                and old.get("seed") == seed and old.get("scenes_version") == SCENES_VERSION
                and old_domain == domain)
        if not same and not overwrite:
            raise FileExistsError(
                f"{root} holds an embedded dataset written with dataset_format={old_format!r}, "
                f"size={old.get('size')}, seed={old.get('seed')}, domain={old_domain!r}, "
                f"scenes_version={old.get('scenes_version')}; asked for dataset_format={dataset_format!r}, "
                f"size={list(size)}, seed={seed}, domain={domain!r}, scenes_version={SCENES_VERSION}. "
                "Use another folder or overwrite=True."
            )
        return same and not overwrite
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        # A folder with foreign content: we only add our files, but never reuse files we did not record.
        return False
    return False


def _write_meta(root: Path, space: LabelSpace, manifest: dict) -> None:
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / LABELS_JSON, space.to_json())
    atomic_write_text(root / DATASET_INFO, json.dumps(manifest, indent=1))


def _prune(folder: Path, pattern: str, n: int) -> int:
    """Delete our own files whose index is >= n (after a re-run with fewer scenes) and stale temp files."""
    if not folder.is_dir():
        return 0
    rx = re.compile(pattern)
    removed = 0
    for p in folder.iterdir():
        m = rx.fullmatch(p.name)
        stale_tmp = p.name.startswith(".") and ".tmp" in p.name
        if (m and int(m.group(1)) >= n) or stale_tmp:
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def _check_args(n_train: int, n_val: int, size: tuple[int, int], seed: int, domain: str) -> tuple[int, int]:
    get_domain(domain)  # unknown name: ValueError listing the domains, before anything is written
    if n_train < 0 or n_val < 0:
        raise ValueError(f"scene counts must be >= 0, got n_train={n_train}, n_val={n_val}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    height, width = (int(v) for v in size)
    if height < 8 or width < 8:
        raise ValueError(f"size is (height, width) >= (8, 8), got {size}")
    return height, width


def _write_files(root: Path, dataset_format: str, counts: dict[str, int], size: tuple[int, int], seed: int,
                 domain: str, overwrite: bool, paths: Callable[[str, int], tuple[Path, ...]],
                 save: Callable[[tuple[Path, ...], np.ndarray, np.ndarray], None],
                 prune: Callable[[str, int], int], progress: Progress, extra: dict | None = None,
                 render: Callable[..., tuple] = render_scene) -> dict:
    """Shared loop of the file formats: manifest, skip-or-render-and-save, prune, final manifest. ``save`` gets
    the output paths and what ``render`` returns (``render_scene``: image and labels)."""
    t0 = time.perf_counter()
    space = embedded_label_space()
    reuse = _begin(root, dataset_format, size, seed, domain, overwrite)
    manifest = dict(format="dpsims-aug-embedded", version=FORMAT_VERSION, dataset_format=dataset_format,
                    size=list(size),
                    seed=int(seed), domain=domain, scenes_version=SCENES_VERSION, splits=counts,
                    complete=False, **(extra or {}))
    _write_meta(root, space, manifest)
    written = skipped = 0
    for split, n in counts.items():
        prune(split, n)
        for i in range(n):
            out = paths(split, i)
            if reuse and all(p.is_file() for p in out):
                skipped += 1
            else:
                save(out, *render(*scene_seeds(seed, i, _STREAMS[split]), size=size, domain=domain))
                written += 1
            if progress is not None:
                progress(1)
    manifest["complete"] = True
    _write_meta(root, space, manifest)
    seconds = time.perf_counter() - t0
    return dict(dataset_format=dataset_format, root=str(root), size=list(size), seed=int(seed), domain=domain,
                splits=dict(counts), written=written, skipped=skipped, seconds=round(seconds, 3),
                labels_json=str(root / LABELS_JSON))


def write_ade20k(root: str | os.PathLike, n_train: int, n_val: int, size: tuple[int, int] = (128, 128),
                 seed: int = 0, *, jpeg_quality: int = 95, overwrite: bool = False,
                 progress: Progress = None, domain: str = DEFAULT_DOMAIN) -> dict:
    """Write the ADE-20K dataset format: ``images/{training,validation}/*.jpg``, ``annotations/.../*.png`` (raw ids).

    Args:
        root: Output folder (created).
        n_train, n_val: Number of scenes per split.
        size: ``(height, width)`` of every scene.
        seed: Dataset seed; scene ``i`` of a split uses :func:`~dpsims_aug.data.scenes.scene_seeds`.
        jpeg_quality: JPEG quality of the images.
        overwrite: Rewrite every file even when ``root`` holds a run with the same parameters, and accept a
            folder written with other parameters.
        progress: Called with 1 after each scene (e.g. ``tqdm.update``).
        domain: The scene world (a key of :data:`~dpsims_aug.data.scenes.DOMAINS`); the scene seeds are the
            same in every domain.

    Returns:
        A summary dict (see :func:`write_dataset`).
    """
    root = Path(root)
    size = _check_args(n_train, n_val, size, seed, domain)
    space = embedded_label_space()
    dirs = {"train": "training", "val": "validation"}

    def paths(split: str, i: int) -> tuple[Path, ...]:
        name = f"scene_{i:06d}"
        d = dirs[split]
        return root / "images" / d / f"{name}.jpg", root / "annotations" / d / f"{name}.png"

    def save(out: tuple[Path, ...], image: np.ndarray, labels: np.ndarray) -> None:
        _save_image(out[0], image, "JPEG", jpeg_quality)
        write_label_map(out[1], space.to_raw(labels))

    def prune(split: str, n: int) -> int:
        return (_prune(root / "images" / dirs[split], r"scene_(\d{6})\.jpg", n)
                + _prune(root / "annotations" / dirs[split], r"scene_(\d{6})\.png", n))

    counts = {"train": n_train, "val": n_val}
    summary = _write_files(root, "ade20k", counts, size, seed, domain, overwrite, paths, save, prune, progress)
    summary["mmseg"] = {s: mmseg_dataset_config(root, "ade20k", s) for s in ("train", "val")}
    return summary


CITY = "scene"


def write_cityscapes(root: str | os.PathLike, n_train: int, n_val: int, size: tuple[int, int] = (128, 128),
                     seed: int = 0, *, overwrite: bool = False, progress: Progress = None,
                     domain: str = DEFAULT_DOMAIN) -> dict:
    """Write the Cityscapes dataset format: ``leftImg8bit/{train,val}/scene/*_leftImg8bit.png`` and
    ``gtFine/{train,val}/scene/*_gtFine_labelIds.png`` (raw ids) + ``*_gtFine_labelTrainIds.png`` (contiguous
    ids, 255 = unlabeled) + ``*_gtFine_instanceIds.png`` (:func:`cityscapes_instance_ids`, 16-bit). Arguments and
    return value as :func:`write_ade20k`."""
    root = Path(root)
    size = _check_args(n_train, n_val, size, seed, domain)
    space = embedded_label_space()

    def paths(split: str, i: int) -> tuple[Path, ...]:
        name = f"{CITY}_{i:06d}_000019"
        gt = root / "gtFine" / split / CITY
        return (root / "leftImg8bit" / split / CITY / f"{name}_leftImg8bit.png",
                gt / f"{name}_gtFine_labelIds.png", gt / f"{name}_gtFine_labelTrainIds.png",
                gt / f"{name}_gtFine_instanceIds.png")

    def save(out: tuple[Path, ...], image: np.ndarray, labels: np.ndarray, objects: np.ndarray) -> None:
        _save_image(out[0], image, "PNG")
        raw = space.to_raw(labels)
        write_label_map(out[1], raw)
        write_label_map(out[2], labels)
        _save_instance_ids(out[3], cityscapes_instance_ids(raw, objects))

    def prune(split: str, n: int) -> int:
        pre = rf"{CITY}_(\d{{6}})_000019"
        return (_prune(root / "leftImg8bit" / split / CITY, pre + r"_leftImg8bit\.png", n)
                + _prune(root / "gtFine" / split / CITY, pre + r"_gtFine_(?:label(?:Train)?|instance)Ids\.png", n))

    summary = _write_files(root, "cityscapes", {"train": n_train, "val": n_val}, size, seed, domain, overwrite,
                           paths, save, prune, progress, render=render_scene_with_instances)
    summary["mmseg"] = {s: mmseg_dataset_config(root, "cityscapes", s) for s in ("train", "val")}
    return summary


def write_folder(root: str | os.PathLike, n_train: int, n_val: int = 0, size: tuple[int, int] = (128, 128),
                 seed: int = 0, *, overwrite: bool = False, progress: Progress = None,
                 domain: str = DEFAULT_DOMAIN) -> dict:
    """Write one plain pair ``images/<name>.png`` + ``labels/<name>.png`` (raw ids) with names
    ``train_000000``/``val_000000`` and split lists ``splits/{train,val}.txt``.
    Arguments and return value as :func:`write_ade20k`."""
    root = Path(root)
    size = _check_args(n_train, n_val, size, seed, domain)
    space = embedded_label_space()

    def paths(split: str, i: int) -> tuple[Path, ...]:
        name = f"{split}_{i:06d}.png"
        return root / "images" / name, root / "labels" / name

    def save(out: tuple[Path, ...], image: np.ndarray, labels: np.ndarray) -> None:
        _save_image(out[0], image, "PNG")
        write_label_map(out[1], space.to_raw(labels))

    def prune(split: str, n: int) -> int:
        return (_prune(root / "images", rf"{split}_(\d{{6}})\.png", n)
                + _prune(root / "labels", rf"{split}_(\d{{6}})\.png", n))

    counts = {"train": n_train, "val": n_val}
    summary = _write_files(root, "folder", counts, size, seed, domain, overwrite, paths, save, prune, progress)
    for split, n in counts.items():
        atomic_write_text(root / "splits" / f"{split}.txt", "".join(f"{split}_{i:06d}\n" for i in range(n)))
    summary["mmseg"] = {s: mmseg_dataset_config(root, "folder", s) for s in ("train", "val")}
    return summary


HF_SPLITS = {"train": "train", "val": "validation"}


def write_hf(root: str | os.PathLike, n_train: int, n_val: int, size: tuple[int, int] = (128, 128),
             seed: int = 0, *, jpeg_quality: int = 95, overwrite: bool = False,
             progress: Progress = None, domain: str = DEFAULT_DOMAIN) -> dict:
    """Write a Hugging Face ``DatasetDict`` (``train``/``validation``) with ``save_to_disk(root)``.

    Columns: ``image`` (``datasets.Image``, JPEG), ``label`` (``datasets.Image``, 8-bit PNG of raw ids:
    0 = unlabeled, k+1 = class k), ``name``, ``layout_seed``, ``appearance_seed``. Read it back with
    ``datasets.load_from_disk(root)``. The split folders are moved into place before ``dataset_dict.json``, so
    an interrupted run never leaves a loadable half dataset. Return value as :func:`write_ade20k`.
    """
    from dpsims_aug.data.readers import import_datasets

    datasets = import_datasets()

    t0 = time.perf_counter()
    root = Path(root)
    size = _check_args(n_train, n_val, size, seed, domain)
    space = embedded_label_space()
    counts = {"train": n_train, "val": n_val}
    reuse = _begin(root, "hf", size, seed, domain, overwrite)
    old = _read_manifest(root) or {}
    done = old.get("complete") and old.get("splits") == counts and (root / "dataset_dict.json").is_file()
    if reuse and done:
        if progress is not None:
            progress(n_train + n_val)
        return dict(dataset_format="hf", root=str(root), size=list(size), seed=int(seed), domain=domain,
                    splits=counts, written=0, skipped=n_train + n_val, seconds=round(time.perf_counter() - t0, 3),
                    labels_json=str(root / LABELS_JSON))
    manifest = dict(format="dpsims-aug-embedded", version=FORMAT_VERSION, dataset_format="hf", size=list(size),
                    seed=int(seed), domain=domain, scenes_version=SCENES_VERSION, splits=counts, complete=False)
    _write_meta(root, space, manifest)

    features = datasets.Features({
        "image": datasets.Image(), "label": datasets.Image(), "name": datasets.Value("string"),
        "layout_seed": datasets.Value("int64"), "appearance_seed": datasets.Value("int64"),
    })
    parts = {}
    for split, n in counts.items():
        if n == 0 and split != "train":
            continue
        rows: dict[str, list] = {k: [] for k in features}
        for i in range(n):
            ls, aps = scene_seeds(seed, i, _STREAMS[split])
            image, labels = render_scene(ls, aps, size=size, domain=domain)
            name = f"scene_{i:06d}"
            rows["image"].append({"bytes": _encode(image, "JPEG", jpeg_quality), "path": f"{name}.jpg"})
            rows["label"].append({"bytes": _encode(space.to_raw(labels), "PNG"), "path": f"{name}.png"})
            rows["name"].append(name)
            rows["layout_seed"].append(ls)
            rows["appearance_seed"].append(aps)
            if progress is not None:
                progress(1)
        hf_split = datasets.Split.TRAIN if split == "train" else datasets.Split.VALIDATION
        parts[HF_SPLITS[split]] = datasets.Dataset.from_dict(rows, features=features, split=hf_split)
    tmp = root / f".hf_tmp_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    bar_was_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bar()  # the caller's `progress` reports; keep save_to_disk quiet
    try:
        datasets.DatasetDict(parts).save_to_disk(str(tmp))
    finally:
        if bar_was_on:
            datasets.enable_progress_bar()
    # Swap into place: remove the old index first, then the old split folders, move new ones, index last.
    (root / "dataset_dict.json").unlink(missing_ok=True)
    for split_dir in HF_SPLITS.values():
        shutil.rmtree(root / split_dir, ignore_errors=True)
        if (tmp / split_dir).exists():
            os.replace(tmp / split_dir, root / split_dir)
    os.replace(tmp / "dataset_dict.json", root / "dataset_dict.json")
    shutil.rmtree(tmp, ignore_errors=True)
    manifest["complete"] = True
    _write_meta(root, space, manifest)
    return dict(dataset_format="hf", root=str(root), size=list(size), seed=int(seed), domain=domain,
                splits=counts, written=n_train + n_val, skipped=0, seconds=round(time.perf_counter() - t0, 3),
                labels_json=str(root / LABELS_JSON))


_WRITERS = {"ade20k": write_ade20k, "cityscapes": write_cityscapes, "folder": write_folder, "hf": write_hf}


def write_dataset(out: str | os.PathLike, dataset_format: str, n_train: int, n_val: int,
                  size: tuple[int, int] = (128, 128), seed: int = 0, *, overwrite: bool = False,
                  progress: Progress = None, domain: str = DEFAULT_DOMAIN) -> dict:
    """Write ``n_train`` + ``n_val`` embedded scenes to ``out`` in ``dataset_format`` (one of
    :data:`WRITABLE_FORMATS`).

    Also writes ``labels.json`` (the LabelSpace) and ``dataset.json`` (parameters, completeness) at ``out``.
    Re-running with the same parameters only writes what is missing (idempotent; resumes a killed run).

    ``domain`` picks the scene world (a key of :data:`~dpsims_aug.data.scenes.DOMAINS`). Scene ``i`` of a split
    uses the same seeds in every domain (domains differ by their priors, not their seed streams), and a folder
    written in one domain is refused for another like any other parameter change.

    Returns:
        Summary: ``dataset_format``, ``root``, ``size``, ``seed``, ``domain``, ``splits`` (counts), ``written``,
        ``skipped``, ``seconds``, ``labels_json`` and, for the mmseg-readable formats, ``mmseg`` (per split, a
        ``BaseSegDataset`` config dict without pipeline).

    Raises:
        ValueError: unknown dataset format or domain (the message lists the valid ones) or bad counts/size/seed.
        FileExistsError: ``out`` holds a dataset written with other parameters and ``overwrite`` is False.
    """
    if dataset_format not in _WRITERS:
        raise ValueError(f"unknown dataset format {dataset_format!r}: choose one of {', '.join(WRITABLE_FORMATS)}")
    get_domain(domain)  # refuse an unknown domain before the lock touches the folder
    from dpsims_aug.locking import output_lock

    with output_lock(out, "dpsims-aug dataset"):  # one writer per folder
        return _WRITERS[dataset_format](out, n_train, n_val, size, seed, overwrite=overwrite, progress=progress,
                                domain=domain)
