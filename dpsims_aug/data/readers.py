"""Find label maps (and image/label pairs) in the usual segmentation dataset formats (on-disk folder structures).

Supported dataset formats (:func:`detect_dataset_format` picks one from the folder structure):

* ``ade20k``: ``images/{training,validation}/*.jpg`` + ``annotations/{training,validation}/*.png``
* ``cityscapes``: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` + ``gtFine/<split>/<city>/*_gtFine_labelIds.png``
  (or ``*_gtFine_labelTrainIds.png`` with ``train_ids=True``)
* ``coco_stuff``: ``images/{train2017,val2017}/*.jpg`` + ``annotations/{train2017,val2017}/*.png`` (stuffthingmaps)
* ``folder``: ``images/`` + ``labels/`` (or ``annotations/``), optionally with one sub-folder per split
* ``bare``: any folder of label-map PNGs (no images)

Every label map gets a :class:`LabelMapRef`: a stable ``key`` (its path relative to the dataset root, posix) that
identifies it in manifests and seeds, and an output ``stem`` (where derived files go, relative, no suffix).
Its instance map (Cityscapes ``*_gtFine_instanceIds.png``, COCO panoptic PNGs, an ``instances/`` folder), when
there is one, is found by the naming conventions of :mod:`dpsims_aug.instance_edges`.
Hugging Face ``datasets`` are read by :func:`hf_label_maps`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from dpsims_aug.data.splits import SPLIT_RECORD, TRAIN, UNKNOWN, canonical_split, recorded_splits
from dpsims_aug.instance_edges import find_instance_map, missing_instance_map, read_instance_map
from dpsims_aug.label_maps import list_label_maps, open_image, read_label_map
from dpsims_aug.labels import LabelMapError, stored_ids

READABLE_FORMATS = ("ade20k", "cityscapes", "coco_stuff", "folder", "bare")
ALL_SPLITS = "all"  # the split argument that reads every split (never for training)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

def import_datasets():
    """The Hugging Face ``datasets`` module, an optional dependency (``pip install "dpsims-aug[hf]"``) that only the
    HF input/output paths need."""
    try:
        import datasets
    except ImportError as err:
        raise ModuleNotFoundError("Hugging Face dataset input/output needs the `datasets` package: "
                                  'pip install "dpsims-aug[hf]" (or pip install datasets)') from err
    return datasets


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as ``[H, W, 3]`` uint8 RGB.

    Raises:
        ValueError: naming the file, if it is missing, unreadable or truncated.
    """
    from PIL import UnidentifiedImageError

    try:
        with open_image(path) as img:  # refuses decompression bombs by name
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError as err:
        raise ValueError(f"{path}: image not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{path}: unreadable or truncated image ({err})") from err


# Split aliases per dataset format: what users type -> the folder name of that format.
_ADE_SPLITS = {"train": "training", "training": "training", "val": "validation", "validation": "validation"}
_CITY_SPLITS = {"train": "train", "training": "train", "val": "val", "validation": "val", "test": "test"}
_COCO_SPLITS = {"train": "train2017", "train2017": "train2017", "val": "val2017", "val2017": "val2017"}
_CITY_SUFFIXES = ("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png")


@dataclass(frozen=True)
class LabelMapRef:
    """One label map of a dataset.

    Attributes:
        key: Stable identity (path relative to the dataset root, posix; ``<split>/<index>`` for HF datasets). Seeds
            and manifests are keyed by it.
        stem: Relative output name without suffix (e.g. ``training/ADE_train_00000001``).
        path: The file, when the label map is a file on disk.
        split: The canonical split it belongs to (``train``/``val``/``test``), or ``unknown`` when the folder
            says nothing about splits.
        instance_path: Its instance map, found by naming convention (:func:`dpsims_aug.instance_edges.
            find_instance_map`); None when there is none.
        expected_instance_path: Where the instance map was looked for first (what errors name); None when no
            convention applies.
    """

    key: str
    stem: str
    path: Path | None = None
    _loader: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)
    split: str = UNKNOWN
    instance_path: Path | None = None
    expected_instance_path: Path | None = field(default=None, repr=False, compare=False)

    def read(self) -> np.ndarray:
        """The raw label ids (2-D uint8/uint16). Raises :class:`LabelMapError` naming the map on bad input."""
        if self.path is not None:
            return read_label_map(self.path)
        if self._loader is None:
            raise LabelMapError(self.key, "label map has neither a path nor a loader")
        return self._loader()

    def read_instances(self, hint: str = "") -> np.ndarray:
        """The instance ids (``(H, W)`` int32; see :func:`dpsims_aug.instance_edges.read_instance_map`).

        Raises:
            LabelMapError: naming this map and the expected instance path (and ``hint``) if it has none.
        """
        if self.instance_path is None:
            raise missing_instance_map(self.name, self.expected_instance_path, hint)
        return read_instance_map(self.instance_path)

    @property
    def name(self) -> str:
        """What error messages call this map: the file path, or the key."""
        return str(self.path) if self.path is not None else self.key


def detect_dataset_format(root: str | os.PathLike) -> str:
    """The dataset format (on-disk folder structure) of the dataset at ``root``: one of :data:`READABLE_FORMATS`.

    Raises:
        LabelMapError: if ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise LabelMapError(root, "is not a folder")
    if (root / "gtFine").is_dir():
        return "cityscapes"
    if (root / "annotations").is_dir() and any((root / "annotations" / s).is_dir() for s in ("training", "validation")):
        return "ade20k"
    if (root / "annotations").is_dir() and any((root / "annotations" / s).is_dir() for s in ("train2017", "val2017")):
        return "coco_stuff"
    if (root / "images").is_dir() and ((root / "labels").is_dir() or (root / "annotations").is_dir()):
        return "folder"
    return "bare"


def _split_dirs(base: Path, split: str | None, aliases: dict[str, str], fmt: str) -> list[Path]:
    """The split folders under ``base`` to read: the asked one, or every known one that exists."""
    if split is None:
        names = sorted(set(aliases.values()))
        found = [base / n for n in names if (base / n).is_dir()]
        if not found:
            raise LabelMapError(base, f"holds none of the {fmt} split folders {names}")
        return found
    if split not in aliases:
        raise LabelMapError(base, f"unknown {fmt} split {split!r}; use one of {sorted(aliases)}")
    folder = base / aliases[split]
    if not folder.is_dir():
        raise LabelMapError(folder, f"split folder of split {split!r} not found")
    return [folder]


def _label_base(root: Path, fmt: str) -> Path:
    if fmt == "cityscapes":
        return root / "gtFine"
    if fmt in ("ade20k", "coco_stuff"):
        return root / "annotations"
    if fmt == "folder":
        return root / "labels" if (root / "labels").is_dir() else root / "annotations"
    return root


def _resolve_format(root: Path, dataset_format: str) -> str:
    if dataset_format == "auto":
        return detect_dataset_format(root)
    if dataset_format not in READABLE_FORMATS:
        raise ValueError(f"unknown dataset format {dataset_format!r}; use 'auto' or one of {READABLE_FORMATS}")
    return dataset_format


def _wanted_split(split: str | None) -> str | None:
    """The canonical split asked for (None = every split)."""
    if split is None or split == ALL_SPLITS:
        return None
    canon = canonical_split(split)
    if canon is None:
        raise LabelMapError(split, f"is not a split name; use train, val, test (or their dataset spellings: "
                                   f"training, validation, train2017, ...) or {ALL_SPLITS!r}")
    return canon


def _read_split_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def _select_unstructured(root: Path, base: Path, split: str | None,
                         train_ids: bool) -> tuple[list[tuple[Path, str]], set[str]]:
    """Label maps of a ``folder`` or ``bare`` dataset and their splits, from (first that applies) the folder's own
    name (``annotations/training``), split sub-folders (``annotations/`` holding ``training/`` + ``validation/``),
    a split record of a derived folder (:data:`SPLIT_RECORD`), split lists (``<root>/splits/<split>.txt`` of names
    relative to ``base`` without suffix, mmseg's ``ann_file``); else every map, split ``unknown``.

    Returns:
        ``[(file, split)]`` and the stems that belong to other splits (their images are not orphans).
    """
    wanted = _wanted_split(split)

    def refuse(own: list[str], where: Path, how: str) -> None:
        if wanted is not None and wanted not in own and own != [UNKNOWN]:
            raise LabelMapError(where, f"holds label maps of the split(s) {', '.join(own)} ({how}), but split "
                                       f"{wanted!r} was asked; pass --split {own[0]} (or --split all) to read them")

    def listed(folder: Path) -> list[Path]:
        files = list_label_maps(folder)
        # A Cityscapes gtFine tree named directly: its label maps are the *_labelIds (or *_labelTrainIds) files only.
        city = [p for p in files if p.name.endswith(_CITY_SUFFIXES)]
        if city:
            files = [p for p in city if p.name.endswith(_CITY_SUFFIXES[1] if train_ids else _CITY_SUFFIXES[0])]
        return files

    own = canonical_split(base.name)
    if own is not None:  # the folder of one split, e.g. annotations/validation
        refuse([own], base, "its folder name")
        return [(p, own) for p in listed(base)], set()
    children = {d: canonical_split(d.name) for d in sorted(base.iterdir()) if d.is_dir()} if base.is_dir() else {}
    split_dirs = {d: s for d, s in children.items() if s is not None}
    if split_dirs:  # a folder of split folders, e.g. annotations/ holding training/ and validation/
        chosen = [d for d, s in split_dirs.items() if wanted is None or s == wanted]
        if not chosen:
            raise LabelMapError(base, f"has no folder of split {wanted!r}; its split folders: "
                                      f"{', '.join(d.name for d in split_dirs)}")
        return [(p, split_dirs[d]) for d in chosen for p in listed(d)], set()
    recorded = recorded_splits(base)
    if recorded is not None:  # a folder the toolkit derived from label maps (e.g. `dpsims-aug layouts`)
        refuse(recorded, base, SPLIT_RECORD)
        tag = recorded[0] if len(recorded) == 1 else UNKNOWN
        return [(p, tag) for p in listed(base)], set()
    lists = {canonical_split(p.stem): p for p in sorted((root / "splits").glob("*.txt"))} if (
        root / "splits").is_dir() else {}
    lists.pop(None, None)
    files = listed(base)
    # Split lists, e.g. splits/train.txt + splits/val.txt (what `dpsims-aug dataset --dataset-format folder` writes).
    if lists:
        if wanted is not None and wanted not in lists:
            raise LabelMapError(root / "splits", f"has no list of split {wanted!r}; lists: "
                                                 f"{', '.join(p.name for p in lists.values())}")
        members = {s: _read_split_list(p) for s, p in lists.items()}
        stem_of = {p: p.relative_to(base).with_suffix("").as_posix() for p in files}
        split_of = {p: next((s for s, names in members.items() if stem_of[p] in names), None) for p in files}
        chosen = [(p, s) for p, s in split_of.items() if s is not None and (wanted is None or s == wanted)]
        others = {stem_of[p] for p, s in split_of.items() if s is not None and s != wanted}
        if wanted is None:  # every map, those in no list as unknown
            chosen = [(p, split_of[p] or UNKNOWN) for p in files]
        return chosen, others
    return [(p, UNKNOWN) for p in files], set()


def find_label_maps(
    root: str | os.PathLike, dataset_format: str = "auto", split: str | None = TRAIN, train_ids: bool = False,
    instance_dir: str | os.PathLike | None = None,
) -> list[LabelMapRef]:
    """The label maps of one split of the dataset at ``root``, sorted by key.

    The split is honoured whatever ``root`` names: the dataset root of a known dataset format, its annotations folder
    (split sub-folders), one split's folder (refused when it is another split), a folder with split lists
    (``splits/<split>.txt``) or a derived folder with a :data:`SPLIT_RECORD`. A folder with none of these holds
    maps of split ``unknown``, taken as they are.

    Args:
        root: Dataset root (or a folder of label maps).
        dataset_format: ``'auto'`` or one of :data:`READABLE_FORMATS` (the dataset's on-disk folder structure).
        split: The split to read (``train``, the default; ``val``; ``test``; or the dataset format's own names such as
            ``training`` or ``val2017``). ``None`` or ``'all'`` reads every split: never use that for training.
        train_ids: Cityscapes: read ``*_gtFine_labelTrainIds.png`` instead of ``*_gtFine_labelIds.png``;
            COCO-Stuff: mmseg's ``*_labelTrainIds.png`` instead of the stuffthingmaps beside them.
        instance_dir: A folder of instance maps, looked at before the naming conventions (see
            :func:`dpsims_aug.instance_edges.instance_map_candidates`). Every ref gets its ``instance_path`` (None
            where there is no instance map).

    Raises:
        LabelMapError: if the folder, the split or any label map is missing, or the folder is another split's.
    """
    return _select_label_maps(root, dataset_format, split, train_ids, instance_dir)[0]


def _select_label_maps(root: str | os.PathLike, dataset_format: str, split: str | None, train_ids: bool,
                       instance_dir: str | os.PathLike | None = None) -> tuple[list[LabelMapRef], set[str]]:
    """:func:`find_label_maps` and the stems of other splits listed in split lists (not orphans to ``find_pairs``)."""
    root = Path(root)
    fmt = _resolve_format(root, dataset_format)
    if split == ALL_SPLITS:
        split = None
    base = _label_base(root, fmt)
    others: set[str] = set()
    if fmt == "cityscapes":
        suffix = _CITY_SUFFIXES[1] if train_ids else _CITY_SUFFIXES[0]
        found = [(p, canonical_split(d.name) or UNKNOWN)
                 for d in _split_dirs(base, split, _CITY_SPLITS, fmt) for p in d.rglob(f"*{suffix}") if p.is_file()]
        if not found:
            raise LabelMapError(base, f"holds no *{suffix} files")
        stems = {p: p.relative_to(base).as_posix()[: -len(suffix)] for p, _ in found}
    else:
        if fmt in ("ade20k", "coco_stuff"):
            aliases = _ADE_SPLITS if fmt == "ade20k" else _COCO_SPLITS
            found = [(p, canonical_split(d.name) or UNKNOWN)
                     for d in _split_dirs(base, split, aliases, fmt) for p in list_label_maps(d)]
            if fmt == "coco_stuff":  # mmseg's converter writes <id>_labelTrainIds.png next to each <id>.png
                found = [(p, s) for p, s in found if p.name.endswith("_labelTrainIds.png") == train_ids]
        else:
            found, others = _select_unstructured(root, base, split, train_ids)
            if not found:
                raise LabelMapError(base, f"holds no label maps of split {split!r}")
        stems = {p: p.relative_to(base).with_suffix("").as_posix() for p, _ in found}
    refs = []
    folders: dict[Path, bool] = {}  # which instance-map folders exist (one stat per folder)
    for p, s in found:
        instance, expected = find_instance_map(p, instance_dir, stems[p], folders)
        refs.append(LabelMapRef(key=p.relative_to(root).as_posix(), stem=stems[p], path=p, split=s,
                                instance_path=instance, expected_instance_path=expected))
    return sorted(refs, key=lambda r: r.key), others


def _find_image(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def _raise_offenders(root: Path, problem: str, offenders: list[str]) -> None:
    shown = ", ".join(offenders[:5]) + (f", ... ({len(offenders)} in all)" if len(offenders) > 5 else "")
    raise LabelMapError(root, f"{len(offenders)} {problem}: {shown}")


def find_pairs(
    root: str | os.PathLike, dataset_format: str = "auto", split: str | None = "train", train_ids: bool = False
) -> list[tuple[Path, Path]]:
    """(image, label map) pairs of one split of the dataset at ``root`` (``split`` as in :func:`find_label_maps`),
    sorted by label key (what a trainer reads).

    Every label map must have its image and every image its label map.

    Raises:
        LabelMapError: naming the first few label maps without an image (or images without a label map) and their
            count; or if the dataset format has no images at all (``bare``).
    """
    root = Path(root)
    fmt = _resolve_format(root, dataset_format)
    if fmt == "bare":
        raise LabelMapError(root, "is a bare folder of label maps without images; need images/ + labels/")
    refs, other_splits = _select_label_maps(root, fmt, split, train_ids)
    pairs: list[tuple[Path, Path]] = []
    missing: list[str] = []
    for ref in refs:
        if fmt == "cityscapes":
            image = root / "leftImg8bit" / f"{ref.stem}_leftImg8bit.png"
            image = image if image.is_file() else None
        else:
            image = _find_image(root / "images", ref.stem)
        if image is None:
            missing.append(ref.key)
        else:
            pairs.append((image, ref.path))
    if missing:
        _raise_offenders(root, "label maps have no image", missing)
    # The other direction: images nobody labelled (a sign of a mismatched copy).
    used = {image.resolve() for image, _ in pairs}
    image_dirs = {image.parent for image, _ in pairs}
    pattern = "*_leftImg8bit.png" if fmt == "cityscapes" else "*"
    orphans = sorted(
        p.relative_to(root).as_posix()
        for d in image_dirs
        for p in d.glob(pattern)
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and p.resolve() not in used
        and not (other_splits and p.relative_to(root / "images").with_suffix("").as_posix() in other_splits)
    )  # images listed in another split's list are that split's, not orphans
    if orphans:
        _raise_offenders(root, "images have no label map", orphans)
    return pairs


def _array_from_hf(value: object, where: str) -> np.ndarray:
    """A label map from a HF dataset cell (PIL image, array or nested list) as a 2-D integer array."""
    from PIL import Image

    if isinstance(value, Image.Image):
        if value.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "HSV"):
            raise LabelMapError(where, f"is a {value.mode} colour image, but a label map must be single-channel ids")
        value = np.array(value)
    array = np.asarray(value)
    if array.ndim != 2 or (not np.issubdtype(array.dtype, np.integer) and array.dtype != bool):
        raise LabelMapError(where, f"expected a 2-D integer label map, got shape {array.shape} dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise LabelMapError(where, f"ids range {array.min()}..{array.max()} does not fit 16 bits")
    return stored_ids(array)


def hf_label_maps(
    path_or_name: str | os.PathLike,
    split: str = "train",
    label_column: str = "label",
    id_column: str | None = None,
) -> list[LabelMapRef]:
    """Label maps of a Hugging Face ``datasets`` dataset, sorted by key.

    ``path_or_name`` is a folder written by ``save_to_disk`` (read with ``datasets.load_from_disk``, offline), or a
    hub name (``datasets.load_dataset``, which needs a network or a cache). Keys are ``f"{split}/{index:08d}"``,
    or ``f"{split}/{row[id_column]}"`` when ``id_column`` is given.

    Raises:
        LabelMapError: if the split or column is missing.
    """
    datasets = import_datasets()

    where = str(path_or_name)
    if Path(path_or_name).is_dir():
        data = datasets.load_from_disk(str(path_or_name))
    else:
        data = datasets.load_dataset(str(path_or_name), split=split)
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise LabelMapError(where, f"has no split {split!r}; splits: {sorted(data)}")
        data = data[split]
    for column in (label_column, id_column):
        if column is not None and column not in data.column_names:
            raise LabelMapError(where, f"has no column {column!r}; columns: {data.column_names}")
    labels_only = data.select_columns([label_column])
    ids = data[id_column] if id_column is not None else range(len(data))
    refs = []
    for index, ident in enumerate(ids):
        key = f"{split}/{ident:08d}" if id_column is None else f"{split}/{ident}"
        ref_name = f"{where}[{split}][{index}]"
        refs.append(
            LabelMapRef(
                key=key,
                stem=str(PurePosixPath(key)),
                split=canonical_split(split) or UNKNOWN,
                _loader=lambda i=index, n=ref_name: _array_from_hf(labels_only[i][label_column], n),
            )
        )
    return sorted(refs, key=lambda r: r.key)
