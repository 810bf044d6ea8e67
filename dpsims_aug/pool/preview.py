"""``preview.png`` of a pool: one row per label map, its colourized labels next to its synthetic images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dpsims_aug.data.readers import LabelMapRef
from dpsims_aug.fileio import atomic_path
from dpsims_aug.image_grid import tile_grid
from dpsims_aug.labels import LabelMapError, LabelSpace
from dpsims_aug.pool.format import image_path

PREVIEW_ROWS, PREVIEW_COLS = 4, 6


def write_preview(out: Path, refs: Sequence[LabelMapRef], n: int, space: LabelSpace, suffix: str) -> Path | None:
    """``preview.png``: one row per label map (the first few that are done): colourized labels | samples."""
    from PIL import Image

    rows = []
    for ref in refs:
        images = [out / image_path(ref.stem, k, suffix) for k in range(min(n, PREVIEW_COLS))]
        if not all(p.is_file() for p in images):
            continue
        try:
            labels = space.colorize(space.to_contiguous(ref.read(), source=ref.name))
        except LabelMapError:
            continue
        rows.append([labels] + [np.asarray(Image.open(p).convert("RGB")) for p in images])
        if len(rows) == PREVIEW_ROWS:
            break
    if not rows:
        return None
    canvas = tile_grid(rows, gap=4)
    path = out / "preview.png"
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")
    return path
