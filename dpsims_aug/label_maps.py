"""Label-map files: single-channel index PNGs (8 or 16 bit; palette PNGs count, their indices are the ids).

:func:`read_label_map` rejects anything else with a :class:`~dpsims_aug.labels.LabelMapError` that names the file
and the problem; :func:`write_label_map` writes atomically; :func:`open_image` refuses decompression bombs from the
header, before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dpsims_aug.fileio import atomic_path
from dpsims_aug.labels import LabelMapError, LabelSpace, stored_ids

LABEL_SUFFIXES = (".png",)
# Largest label map / image (pixels) the readers decode: a file whose header claims more is refused by name before
# any pixel is decoded (a 60000x60000 PNG is a few kB on disk but 3.6 GB in memory). The default is PIL's own
# decompression-bomb limit (2 x PIL.Image.MAX_IMAGE_PIXELS); raise it with the environment variable
# DPSIMS_AUG_MAX_PIXELS (PIL's limit is raised to match when the readers open a file).
MAX_PIXELS = int(os.environ.get("DPSIMS_AUG_MAX_PIXELS", 2 * 89478485))


def open_image(path: str | os.PathLike):
    """``PIL.Image.open(path)``, refusing (with :class:`LabelMapError` naming the file) a header that claims more
    than :data:`MAX_PIXELS` pixels; nothing is decoded yet."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and 2 * Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2 + 1  # PIL refuses at twice its setting: let ours decide
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as err:
        raise LabelMapError(path, f"claims more pixels than the limit of {MAX_PIXELS} ({err}); raise it with "
                                  "DPSIMS_AUG_MAX_PIXELS if the file is genuine") from err
    width, height = img.size
    if width * height > MAX_PIXELS:
        img.close()
        raise LabelMapError(path, f"claims {width}x{height} pixels, more than the limit of {MAX_PIXELS} (raise it "
                                  "with DPSIMS_AUG_MAX_PIXELS if the file is genuine)")
    return img


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel index label map (8/16-bit grayscale or palette PNG) as a 2-D uint8/uint16 array.

    Raises:
        LabelMapError: naming the file, if it is missing, unreadable or truncated, or a colour image.
    """
    from PIL import UnidentifiedImageError

    try:
        with open_image(path) as img:  # the pixel limit is checked from the header, before decoding
            img.load()
            mode = img.mode
            if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "HSV"):
                raise LabelMapError(
                    path,
                    f"is a {mode} colour image, but a label map must be a single-channel index PNG (one class id "
                    "per pixel). If it is a colour-coded map, convert it to ids with "
                    "LabelSpace.rgb_to_contiguous(image) using the dataset's palette, and save it with "
                    "dpsims_aug.label_maps.write_label_map.",
                )
            if mode == "F":
                raise LabelMapError(path, "holds floating-point values; label ids must be integers")
            array = np.array(img)
    except LabelMapError:
        raise
    except FileNotFoundError as err:
        raise LabelMapError(path, "file not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise LabelMapError(path, f"unreadable or truncated image ({err})") from err
    if array.ndim != 2:
        raise LabelMapError(path, f"expected a single-channel image, got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 65535:
            raise LabelMapError(path, f"ids range {array.min()}..{array.max()} does not fit 16 bits")
        array = array.astype(np.uint16)
    return array


def write_label_map(path: str | os.PathLike, ids: np.ndarray) -> None:
    """Write a 2-D id array as a single-channel PNG (8-bit if ids < 256, else 16-bit), atomically."""
    data = encode_label_png(ids, source=path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def encode_label_png(ids: np.ndarray, source: str | os.PathLike | None = None) -> bytes:
    """A 2-D id array as the bytes of a single-channel PNG (:func:`stored_ids`: 8-bit or 16-bit).

    Raises:
        ValueError: (naming ``source``) if the array is not 2-D or holds ids outside 0..65535.
    """
    from PIL import Image

    ids = np.asarray(ids)
    where = f"{source}: " if source is not None else ""
    if ids.ndim != 2:
        raise ValueError(f"{where}a label map must be 2-D, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > 65535):
        raise ValueError(f"{where}ids must lie in 0..65535")
    buf = io.BytesIO()
    Image.fromarray(stored_ids(ids)).save(buf, format="PNG")
    return buf.getvalue()


def list_label_maps(folder: str | os.PathLike, suffixes: Sequence[str] = LABEL_SUFFIXES) -> list[Path]:
    """All label maps under ``folder`` (recursive, sorted by relative path).

    Raises:
        LabelMapError: if the folder does not exist or holds no file with one of ``suffixes``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelMapError(folder, "is not a folder")
    # Entries that are not readable files (e.g. a symbolic link whose target is gone) are listed too, so that a
    # reader names them (and `generate --on-error skip` lists them) instead of their vanishing silently.
    found = sorted(
        (p for p in folder.rglob("*") if p.suffix.lower() in suffixes and not p.name.startswith(".")
         and (p.is_file() or (p.is_symlink() and not p.exists()))),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not found:
        raise LabelMapError(folder, f"holds no label maps ({', '.join('*' + s for s in suffixes)}), recursively")
    return found


def load_label_map(path: str | os.PathLike, label_space: LabelSpace) -> np.ndarray:
    """Read a label map from disk and map it to contiguous ids of ``label_space`` (errors name the file)."""
    return label_space.to_contiguous(read_label_map(path), source=path)
