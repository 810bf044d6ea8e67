"""One way to tile images into a sheet: the scene grid, a pool's preview and the trainer's sample grids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["tile_grid"]


def tile_grid(rows: Sequence[Sequence[np.ndarray]], gap: int = 2, background: int = 255) -> np.ndarray:
    """Tiles (``H x W x 3`` uint8 arrays) in rows and columns on a ``background`` sheet, ``gap`` pixels apart and
    from the border. Every cell is as large as the largest tile; a smaller tile sits at its cell's top left."""
    if not rows or not any(len(row) for row in rows):
        raise ValueError("tile_grid needs at least one tile")
    h = max(t.shape[0] for row in rows for t in row)
    w = max(t.shape[1] for row in rows for t in row)
    cols = max(len(row) for row in rows)
    sheet = np.full((len(rows) * (h + gap) + gap, cols * (w + gap) + gap, 3), background, np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y, x = gap + r * (h + gap), gap + c * (w + gap)
            sheet[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    return sheet
