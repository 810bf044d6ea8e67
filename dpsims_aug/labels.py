"""Label conventions: one :class:`LabelSpace` travels with every model, dataset and checkpoint.

Datasets store *raw* ids on disk (ADE-20K: 0 = unlabeled, 1..150 = classes; Cityscapes: labelIds; COCO-Stuff:
0..181 with gaps, 255 = unlabeled). Models work on *contiguous* ids 0..C-1 plus ``ignore_index`` (255) for
unlabeled pixels. :meth:`LabelSpace.to_contiguous` is the only place where raw ids become model ids, and it
refuses ids it does not know instead of silently mapping them to a class.

Label-map files (reading, writing, listing) are :mod:`dpsims_aug.label_maps`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

IGNORE_INDEX = 255


class LabelMapError(ValueError):
    """A label map (or a folder of them) cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


@dataclass(frozen=True)
class LabelSpace:
    """Class names, palette, ignore value and the raw-id -> contiguous-id mapping of one dataset.

    Args:
        name: Short identifier (``"ade20k"``, ``"embedded"``, ...).
        class_names: Name of each contiguous class ``0..C-1``.
        palette: RGB colour of each contiguous class.
        raw_ids: Raw id stored on disk for each contiguous class (``raw_ids[c]`` is class ``c``).
        raw_ignore: Raw ids that mean "unlabeled"; they become ``ignore_index``.
        ignore_index: Contiguous value for unlabeled pixels (255, as in mmseg).
    """

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    raw_ids: tuple[int, ...]
    raw_ignore: tuple[int, ...] = ()
    ignore_index: int = IGNORE_INDEX
    _lut: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Normalize containers so that JSON round trips compare equal.
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        object.__setattr__(self, "palette", tuple(tuple(int(v) for v in rgb) for rgb in self.palette))
        object.__setattr__(self, "raw_ids", tuple(int(i) for i in self.raw_ids))
        object.__setattr__(self, "raw_ignore", tuple(int(i) for i in self.raw_ignore))
        c = len(self.class_names)
        if not 0 < c < self.ignore_index:
            raise ValueError(f"LabelSpace {self.name!r}: need 1..{self.ignore_index - 1} classes, got {c}")
        if len(self.palette) != c or len(self.raw_ids) != c:
            raise ValueError(
                f"LabelSpace {self.name!r}: {c} class names but {len(self.palette)} colours "
                f"and {len(self.raw_ids)} raw ids"
            )
        if any(len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb) for rgb in self.palette):
            raise ValueError(f"LabelSpace {self.name!r}: palette entries must be RGB triples in 0..255")
        all_raw = self.raw_ids + self.raw_ignore
        if len(set(all_raw)) != len(all_raw):
            raise ValueError(f"LabelSpace {self.name!r}: a raw id is listed twice")
        if any(not 0 <= r <= 65535 for r in all_raw):
            raise ValueError(f"LabelSpace {self.name!r}: raw ids must lie in 0..65535 (8- or 16-bit PNG)")
        # Lookup table raw -> contiguous, -1 for ids this space does not know.
        lut = np.full(max(all_raw) + 1, -1, dtype=np.int32)
        lut[list(self.raw_ids)] = np.arange(c, dtype=np.int32)
        lut[list(self.raw_ignore)] = self.ignore_index
        object.__setattr__(self, "_lut", lut)

    @property
    def num_classes(self) -> int:
        """Number of contiguous classes C."""
        return len(self.class_names)

    def unknown_ids(self, raw: np.ndarray) -> list[int]:
        """Raw ids present in ``raw`` that this space neither maps to a class nor treats as unlabeled."""
        values = np.unique(raw)
        known = (values >= 0) & (values < len(self._lut))
        known[known] = self._lut[values[known]] >= 0
        return [int(v) for v in values[~known]]

    def to_contiguous(self, raw: np.ndarray, source: str | os.PathLike | None = None) -> np.ndarray:
        """Map raw ids to contiguous ids (uint8, ``ignore_index`` for unlabeled).

        Raises:
            LabelMapError: naming ``source`` and listing the unknown ids, if any pixel has an id this space does
                not know.
        """
        raw = np.asarray(raw)
        unknown = self.unknown_ids(raw)
        if unknown:
            shown = ", ".join(map(str, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
            raise LabelMapError(
                source,
                f"label ids {{{shown}}} are not in label space {self.name!r} "
                f"(known raw ids: {_ranges(self.raw_ids)}; unlabeled: {_ranges(self.raw_ignore) or 'none'})",
            )
        return self._lut[raw].astype(np.uint8)

    def to_raw(self, contiguous: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_contiguous`: contiguous ids back to the ids written on disk."""
        contiguous = np.asarray(contiguous)
        inverse = np.full(256, -1, dtype=np.int64)
        inverse[: self.num_classes] = self.raw_ids
        if self.raw_ignore:
            inverse[self.ignore_index] = self.raw_ignore[0]
        out = inverse[contiguous.astype(np.int64)]
        if (out < 0).any():
            bad = sorted(set(np.unique(contiguous[out < 0]).tolist()))
            raise ValueError(f"contiguous ids {bad} have no raw id in label space {self.name!r}")
        return stored_ids(out)

    def class_translation(self, target: LabelSpace) -> np.ndarray:
        """``t[c]``: the class of ``target`` that has the raw id of this space's class ``c`` (int64, ``[C]``);
        ``target.ignore_index`` where ``target`` treats that raw id as unlabeled, -1 where it does not know it."""
        if self == target:
            return np.arange(self.num_classes, dtype=np.int64)
        raw_of = np.asarray(self.raw_ids, dtype=np.int64)
        known = ~np.isin(raw_of, target.unknown_ids(raw_of))
        out = np.full(self.num_classes, -1, dtype=np.int64)
        if known.any():
            out[known] = target.to_contiguous(raw_of[known]).astype(np.int64)
        return out

    def mmseg_annotation_classes(self, reduce_zero_label: bool = False, label_map: dict | None = None,
                                 contiguous: bool = False) -> np.ndarray:
        """``lut[v]`` for every value ``v`` (0..255) that mmseg's ``LoadAnnotations`` can leave in ``gt_seg_map``: this
        space's class (int64), ``ignore_index`` for unlabeled, -1 for a value it cannot come from.

        It undoes, in order, the dataset's ``label_map`` (new id -> dataset id; 255 stays unlabeled) and
        ``reduce_zero_label`` (0 -> 255, k -> k - 1), then reads the values as this space's raw ids (or, with
        ``contiguous=True``, as its contiguous ids). 255 is unlabeled whatever the space says: mmseg's losses and
        metrics ignore it.
        """
        if reduce_zero_label and contiguous:
            raise ValueError("reduce_zero_label and contiguous annotations cannot both hold")
        values = np.arange(256, dtype=np.int64)
        if label_map:
            values = np.full(256, -1, dtype=np.int64)
            values[255] = 255
            for old, new in label_map.items():
                if new != 255:
                    values[int(new)] = int(old)
        lut = np.full(256, -1, dtype=np.int64)
        if contiguous:
            ok = (values >= 0) & (values < self.num_classes)
            lut[ok] = values[ok]
        else:
            raw = values + 1 if reduce_zero_label else values.copy()
            ok = (values >= 0) & (values != 255)
            ok &= ~np.isin(raw, self.unknown_ids(raw[ok]))
            if ok.any():
                lut[ok] = self.to_contiguous(raw[ok]).astype(np.int64)
        lut[values == 255] = self.ignore_index
        return lut

    def contiguous(self) -> LabelSpace:
        """The same classes read from maps that already hold contiguous ids (e.g. after mmseg's
        ``reduce_zero_label``, or Cityscapes ``*_labelTrainIds.png``)."""
        return LabelSpace(
            name=f"{self.name}:contiguous",
            class_names=self.class_names,
            palette=self.palette,
            raw_ids=tuple(range(self.num_classes)),
            raw_ignore=(self.ignore_index,),
            ignore_index=self.ignore_index,
        )

    def colorize(self, contiguous: np.ndarray, ignore_color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
        """Render contiguous ids as an RGB image (``H x W x 3`` uint8) with the palette."""
        colours = np.zeros((256, 3), dtype=np.uint8)
        colours[: self.num_classes] = self.palette
        colours[self.ignore_index] = ignore_color
        return colours[np.asarray(contiguous, dtype=np.uint8)]

    def rgb_to_contiguous(self, rgb: np.ndarray, source: str | os.PathLike | None = None) -> np.ndarray:
        """Convert a colour-coded label image (palette colours) to contiguous ids.

        Black pixels that match no class colour become ``ignore_index``; any other unknown colour is an error.
        """
        rgb = np.asarray(rgb)[..., :3].astype(np.int64)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        table = {(r << 16) | (g << 8) | b: c for c, (r, g, b) in enumerate(self.palette)}
        values, inverse = np.unique(codes, return_inverse=True)
        mapped = np.array([table.get(int(v), self.ignore_index if v == 0 else -1) for v in values])
        if (mapped < 0).any():
            bad = [f"#{int(v):06x}" for v in values[mapped < 0][:10]]
            raise LabelMapError(source, f"colours {bad} are not in the palette of label space {self.name!r}")
        return mapped[inverse].reshape(codes.shape).astype(np.uint8)

    def to_dict(self) -> dict:
        """JSON-serializable description (stored in checkpoints and next to datasets)."""
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "palette": [list(rgb) for rgb in self.palette],
            "raw_ids": list(self.raw_ids),
            "raw_ignore": list(self.raw_ignore),
            "ignore_index": self.ignore_index,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LabelSpace:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            class_names=tuple(data["class_names"]),
            palette=tuple(tuple(rgb) for rgb in data["palette"]),
            raw_ids=tuple(data["raw_ids"]),
            raw_ignore=tuple(data.get("raw_ignore", ())),
            ignore_index=int(data.get("ignore_index", IGNORE_INDEX)),
        )

    def to_json(self) -> str:
        """The :meth:`to_dict` form as a JSON string."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> LabelSpace:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelSpace:
        """Read a LabelSpace from a JSON file (e.g. the ``labels.json`` written next to a dataset)."""
        try:
            return cls.from_json(Path(path).read_text())
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise LabelMapError(path, f"not a readable LabelSpace JSON file ({err})") from err


def _ranges(ids: Sequence[int]) -> str:
    """Compact text for a set of ids: ``0-149, 255``."""
    ids = sorted(ids)
    parts: list[str] = []
    start = prev = None
    for i in ids + [None]:
        if start is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------- presets

EMBEDDED_CLASSES = ("sky", "cloud", "mountain", "water", "sand", "grass", "tree", "rock", "building", "road")
EMBEDDED_PALETTE = (
    (112, 170, 235), (235, 235, 240), (120, 95, 80), (40, 90, 170), (225, 205, 140),
    (90, 170, 60), (25, 100, 40), (130, 130, 125), (190, 80, 60), (70, 70, 75),
)

CITYSCAPES_CLASSES = (
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic", "ground", "road",
    "sidewalk", "parking", "rail track", "building", "wall", "fence", "guard rail", "bridge", "tunnel", "pole",
    "polegroup", "traffic light", "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle", "license plate",
)
CITYSCAPES_PALETTE = (
    (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (111, 74, 0), (81, 0, 81), (128, 64, 128),
    (244, 35, 232), (250, 170, 160), (230, 150, 140), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (180, 165, 180), (150, 100, 100), (150, 120, 90), (153, 153, 153), (153, 153, 153), (250, 170, 30),
    (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142),
    (0, 0, 70), (0, 60, 100), (0, 0, 90), (0, 0, 110), (0, 80, 100), (0, 0, 230), (119, 11, 32), (0, 0, 142),
)
# labelId of each of the 19 Cityscapes training classes (trainId order).
CITYSCAPES_TRAIN_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)

# COCO-Stuff: 182 raw ids (0..181), of which these 11 "thing" ids are never annotated; the 171-class variant
# (mmseg's COCOStuffDataset) drops them.
COCO_UNUSED_RAW_IDS = {
    11: "street sign", 25: "hat", 28: "shoe", 29: "eye glasses", 44: "plate", 65: "mirror",
    67: "window", 68: "desk", 70: "door", 82: "blender", 90: "hair brush",
}


def _preset_json(name: str) -> dict:
    return json.loads(resources.files("dpsims_aug.presets").joinpath(f"{name}.json").read_text())


def embedded_label_space() -> LabelSpace:
    """The embedded procedural scene dataset: 10 classes, ADE-style raw ids (0 = unlabeled, k+1 = class k)."""
    return LabelSpace("embedded", EMBEDDED_CLASSES, EMBEDDED_PALETTE, tuple(range(1, 11)), raw_ignore=(0,))


def ade20k_label_space() -> LabelSpace:
    """ADE-20K SceneParsing: raw 0 = unlabeled, 1..150 -> 0..149 (what mmseg's ``reduce_zero_label`` does)."""
    meta = _preset_json("ade20k")
    return LabelSpace("ade20k", meta["class_names"], meta["palette"], tuple(range(1, 151)), raw_ignore=(0,))


def coco_stuff_label_space(num_classes: int = 171) -> LabelSpace:
    """COCO-Stuff stuffthingmaps (raw 0..181 with gaps, 255 = unlabeled), as 171 or 182 contiguous classes."""
    meta = _preset_json("coco_stuff171")
    used = [r for r in range(182) if r not in COCO_UNUSED_RAW_IDS]
    if num_classes == 171:
        return LabelSpace("coco_stuff171", meta["class_names"], meta["palette"], used, raw_ignore=(255,))
    if num_classes == 182:
        names = dict(zip(used, meta["class_names"]))
        colours = dict(zip(used, meta["palette"]))
        names.update(COCO_UNUSED_RAW_IDS)
        colours.update({r: (96 + r % 64, 96, 96) for r in COCO_UNUSED_RAW_IDS})
        return LabelSpace(
            "coco_stuff182", [names[r] for r in range(182)], [colours[r] for r in range(182)], range(182),
            raw_ignore=(255,),
        )
    raise ValueError(f"COCO-Stuff has 171 or 182 classes, not {num_classes}")


def cityscapes_label_space(train_ids: bool = False) -> LabelSpace:
    """Cityscapes ``*_gtFine_labelIds.png`` as the 35 labelIds SPADE/OASIS use, or as the 19 training classes.

    With ``train_ids=True`` the raw files are still labelIds; the 16 non-training ids become unlabeled. For files
    that already hold trainIds (``*_labelTrainIds.png``) use ``cityscapes_label_space(True).contiguous()``.
    """
    if not train_ids:
        return LabelSpace("cityscapes", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, range(35), raw_ignore=(255,))
    ignored = tuple(i for i in range(35) if i not in CITYSCAPES_TRAIN_LABEL_IDS) + (255,)
    return LabelSpace(
        "cityscapes19",
        [CITYSCAPES_CLASSES[i] for i in CITYSCAPES_TRAIN_LABEL_IDS],
        [CITYSCAPES_PALETTE[i] for i in CITYSCAPES_TRAIN_LABEL_IDS],
        CITYSCAPES_TRAIN_LABEL_IDS,
        raw_ignore=ignored,
    )


LABEL_SPACE_PRESETS = {
    "embedded": embedded_label_space,
    "ade20k": ade20k_label_space,
    "coco_stuff171": functools.partial(coco_stuff_label_space, 171),
    "coco_stuff182": functools.partial(coco_stuff_label_space, 182),
    "cityscapes": functools.partial(cityscapes_label_space, False),
    "cityscapes19": functools.partial(cityscapes_label_space, True),
}


def get_label_space(name_or_path: str | os.PathLike) -> LabelSpace:
    """A preset by name (see ``LABEL_SPACE_PRESETS``) or a LabelSpace JSON file."""
    if str(name_or_path) in LABEL_SPACE_PRESETS:
        return LABEL_SPACE_PRESETS[str(name_or_path)]()
    if Path(name_or_path).suffix == ".json":
        return LabelSpace.load(name_or_path)
    raise ValueError(
        f"unknown label space {str(name_or_path)!r}: use one of {sorted(LABEL_SPACE_PRESETS)} or a .json file"
    )


def stored_ids(ids: np.ndarray) -> np.ndarray:
    """``ids`` in the integer type label maps are stored in: uint8 when every id is below 256, else uint16."""
    ids = np.asarray(ids)
    return ids.astype(np.uint8 if ids.max(initial=0) < 256 else np.uint16)
