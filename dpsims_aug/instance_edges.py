"""Instance maps and the instance-boundary ("edge") input of generators trained with ``use_instance_edges``.

SPADE and OASIS give the generator, next to the label map, a map that is 1 on the boundaries between object
*instances*: two cars side by side are one ``car`` region in the label map, but two objects in the image. This module
is the one place that

* turns an instance map into that edge map (:func:`instance_edges`, the SPADE / pix2pixHD rule: a pixel is an edge
  when any of its 4 neighbours has another instance id; class boundaries are edges too, as long as the instance map
  gives different classes different ids, which every format below does);
* reads instance maps (:func:`read_instance_map`): single-channel id PNGs (Cityscapes ``*_gtFine_instanceIds.png``:
  ``class_id * 1000 + k`` for the k-th object of a "thing" class, the class id elsewhere) and COCO panoptic RGB
  PNGs (segment id ``R + 256 G + 256^2 B``, :func:`decode_panoptic_rgb`);
* finds the instance map of a label map by naming convention (:func:`find_instance_map`):

  - Cityscapes: ``<name>_gtFine_instanceIds.png`` next to ``<name>_gtFine_labelIds.png`` (or ``labelTrainIds``);
  - COCO-Stuff: ``panoptic_<split>/<image id>.png`` for a label map ``<split>/<image id>.png`` (or mmseg's
    ``<image id>_labelTrainIds.png``) where ``<split>`` is ``train2017``/``val2017``: looked up beside the split
    folder (``annotations/panoptic_train2017``, what unzipping COCO's panoptic annotations into the dataset root
    gives), one level up (``<root>/panoptic_train2017`` next to ``stuffthingmaps_trainval2017/``) and in
    ``<root>/annotations/``;
  - any dataset format with a ``labels/`` or ``annotations/`` folder: the same relative path under an
    ``instances/`` folder beside it (``instances/train_000000.png`` for ``labels/train_000000.png``);
  - a folder the user names (``instance_dir``, ``generate --instances DIR``): ``DIR/<stem>.png`` (the label tree
    mirrored), ``DIR/panoptic_<split>/<name>.png`` and ``DIR/<name>.png``, tried before the conventions.

A generator trained with instance edges refuses label maps without an instance map (:func:`missing_instance_map`
names the map and the path looked for) unless the caller asks for the label map's class boundaries instead
(``edges='from-labels'``): these lack the boundaries between touching objects of one class, which the generator has
learned to draw.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import numpy as np

from dpsims_aug.label_maps import open_image
from dpsims_aug.labels import LabelMapError

EDGE_MODES = ("instances", "from-labels")  # where a generator with use_instance_edges gets its edge input
INSTANCE_FOLDER = "instances"  # the generic convention: instances/<same path> beside labels/ or annotations/
CITY_INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
_CITY_LABEL = re.compile(r"(.+)_gtFine_(?:labelIds|labelTrainIds|color)\.png")
_COCO_SPLIT = re.compile(r"(?:train|val|test)\d{4}")
_LABEL_NAME_SUFFIXES = ("_labelTrainIds", "_labelIds")  # mmseg's converted COCO-Stuff names
_LABEL_FOLDERS = ("labels", "annotations")


def instance_edges(instance_ids):
    """The boundary map of an instance map: 1.0 where a 4-neighbour has another id, else 0.0.

    This is the edge rule of pix2pixHD and SPADE (``get_edges``): both pixels of a differing pair are edges, so a
    boundary is two pixels wide; image borders are not edges. Class maps give class boundaries
    (:func:`dpsims_aug.synthesis.label_edges` is this function on a label batch).

    Args:
        instance_ids: Integer ids, ``(..., H, W)``: a numpy array or a torch tensor (any leading dimensions).

    Returns:
        float32 of the same shape and kind (numpy array, or tensor on the same device).
    """
    if isinstance(instance_ids, np.ndarray):
        ids = instance_ids
        edges = np.zeros(ids.shape, dtype=bool)
    else:
        import torch

        ids = instance_ids
        edges = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
    if ids.ndim < 2:
        raise ValueError(f"instance ids must be (..., H, W), got shape {tuple(ids.shape)}")
    dx = ids[..., :, 1:] != ids[..., :, :-1]
    dy = ids[..., 1:, :] != ids[..., :-1, :]
    edges[..., :, 1:] |= dx
    edges[..., :, :-1] |= dx
    edges[..., 1:, :] |= dy
    edges[..., :-1, :] |= dy
    return edges.astype(np.float32) if isinstance(edges, np.ndarray) else edges.float()


def decode_panoptic_rgb(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG pixels ``(H, W, 3)`` -> segment ids ``R + 256 G + 256^2 B`` as ``(H, W)`` int32 (0: void)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"a panoptic PNG holds (H, W, 3) RGB pixels, got shape {rgb.shape}")
    rgb = rgb[..., :3].astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def read_instance_map(path: str | os.PathLike) -> np.ndarray:
    """An instance map file as ``(H, W)`` int32 ids: single-channel PNGs (8/16/32-bit, e.g. Cityscapes
    ``*_gtFine_instanceIds.png``) as they are, RGB(A) PNGs as COCO panoptic ids (:func:`decode_panoptic_rgb`).

    Raises:
        LabelMapError: naming the file, if it is missing, unreadable or not an id image.
    """
    from PIL import UnidentifiedImageError

    try:
        with open_image(path) as img:
            img.load()
            mode = img.mode
            if mode in ("RGB", "RGBA"):
                return decode_panoptic_rgb(np.asarray(img.convert("RGB")))
            if mode in ("F", "LA", "CMYK", "YCbCr", "HSV"):
                raise LabelMapError(path, f"is a {mode} image; an instance map holds integer ids (one channel, or "
                                          "COCO panoptic RGB)")
            array = np.array(img)
    except LabelMapError:
        raise
    except FileNotFoundError as err:
        raise LabelMapError(path, "instance map not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise LabelMapError(path, f"unreadable or truncated instance map ({err})") from err
    if array.ndim != 2:
        raise LabelMapError(path, f"expected a single-channel instance map, got shape {array.shape}")
    return array.astype(np.int32)


def read_instance_edges(path: str | os.PathLike, shape: tuple[int, int], label_name: str | None = None) -> np.ndarray:
    """:func:`instance_edges` of the instance map at ``path``, which must be ``shape`` (the label map's ``(H, W)``).

    Raises:
        LabelMapError: naming both files, if the sizes differ (or the file is unusable).
    """
    ids = read_instance_map(path)
    if ids.shape != tuple(shape):
        of = f" but its label map {label_name} is" if label_name else ", expected"
        raise LabelMapError(path, f"instance map is {ids.shape[1]}x{ids.shape[0]}{of} {shape[1]}x{shape[0]}")
    return instance_edges(ids)


def _names(label: Path) -> tuple[str, bool]:
    """(file name of the instance map, whether ``label`` is a Cityscapes file)."""
    city = _CITY_LABEL.fullmatch(label.name)
    if city:
        return city.group(1) + CITY_INSTANCE_SUFFIX, True
    base = label.stem
    for suffix in _LABEL_NAME_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base + ".png", False


def instance_map_candidates(label_path: str | os.PathLike, instance_dir: str | os.PathLike | None = None,
                            stem: str | None = None) -> list[Path]:
    """Where the instance map of ``label_path`` may be, in the order looked at (see the module docstring).

    Args:
        label_path: The label map file.
        instance_dir: A folder of instance maps given by the user (looked at first).
        stem: The label map's stem relative to its dataset (``LabelMapRef.stem``), for a mirrored tree in
            ``instance_dir``.
    """
    label = Path(label_path)
    name, city = _names(label)
    folder = label.parent
    coco = _COCO_SPLIT.fullmatch(folder.name) is not None
    out: list[Path] = []
    if instance_dir is not None:
        user = Path(instance_dir)
        if stem:
            out.append(user / PurePosixPath(stem).parent / name)
        if coco:
            out.append(user / f"panoptic_{folder.name}" / name)
        out.append(user / name)
    if city:
        out.append(folder / name)
        return list(dict.fromkeys(out))
    if coco:
        out += [folder.parent / f"panoptic_{folder.name}" / name,
                folder.parent.parent / f"panoptic_{folder.name}" / name,
                folder.parent.parent / "annotations" / f"panoptic_{folder.name}" / name]
    for ancestor in list(label.parents)[:4]:
        if ancestor.name in _LABEL_FOLDERS:
            out.append(ancestor.parent / INSTANCE_FOLDER / label.relative_to(ancestor))
            break
    return list(dict.fromkeys(out))


def find_instance_map(label_path: str | os.PathLike, instance_dir: str | os.PathLike | None = None,
                      stem: str | None = None, folders: dict[Path, bool] | None = None,
                      ) -> tuple[Path | None, Path | None]:
    """``(found, expected)``: the first existing :func:`instance_map_candidates` (or None), and the path an error
    message should name (the first candidate; None when no convention applies).

    ``folders``: a cache of which candidate folders exist, shared by the calls of one dataset scan, so that a dataset
    without instance maps costs one ``stat`` per folder rather than per label map.
    """
    candidates = instance_map_candidates(label_path, instance_dir, stem)
    folders = {} if folders is None else folders
    found = None
    for path in candidates:
        exists = folders.get(path.parent)
        if exists is None:
            exists = folders[path.parent] = path.parent.is_dir()
        if exists and path.is_file():
            found = path
            break
    return found, (candidates[0] if candidates else None)


def missing_instance_map(label: str | os.PathLike | None, expected: str | os.PathLike | None,
                         hint: str) -> LabelMapError:
    """The error for a label map without an instance map: names the map, where its instance map was looked for,
    and ``hint`` (why one is needed and how to go on: e.g. ``--edges from-labels``)."""
    where = (f"expected {expected}" if expected is not None
             else "no naming convention applies to it: name the folder of instance maps")
    return LabelMapError(label, f"has no instance map ({where}){'; ' + hint if hint else ''}")


def check_edge_mode(edges: str, where: str) -> str:
    """``edges`` if it is one of :data:`EDGE_MODES`, else a ValueError naming ``where``."""
    if edges not in EDGE_MODES:
        raise ValueError(f"{where}: edges must be one of {', '.join(EDGE_MODES)}, got {edges!r}")
    return edges


__all__ = [
    "CITY_INSTANCE_SUFFIX",
    "EDGE_MODES",
    "INSTANCE_FOLDER",
    "check_edge_mode",
    "decode_panoptic_rgb",
    "find_instance_map",
    "instance_edges",
    "instance_map_candidates",
    "missing_instance_map",
    "read_instance_edges",
    "read_instance_map",
]
