"""What the segmentation-gain study's variants train on, for a few labelled maps (a picture next to its numbers).

Columns: label map | real image | oracle (the renderer, a new appearance of the same layout) | two generator
images of that map | the first one after ``dpsims-aug filter`` (dropped pixels in magenta) | a new layout from
``dpsims-aug layouts`` | the generator's image of it. Reads a study folder of ``bench_seg_gain.py`` (run it with
``--variants pool_n4 pool_n4_f oracle_n4 layouts_n4`` first).

    python benchmarks/studies/recipe_grid.py --study work_dirs/seg_gain_bundled/L32_V200_S64 --gan given_0de63888ff7d

Writes ``work_dirs/benchmarks/recipe_grid.png``; ``--update-results`` writes the committed figure of the docs,
``docs/recipe_grid.png``, ``--out`` any path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import REPO, add_output_args, output_path  # noqa: E402  (benchmarks/common.py)

NAME = "recipe_grid.png"
COMMITTED = REPO / "docs" / NAME  # the figure README.md and docs/studies.md show


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    from dpsims_aug.data.readers import read_rgb
    from dpsims_aug.label_maps import read_label_map
    from dpsims_aug.labels import embedded_label_space

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, required=True, help="a study folder (L<n>_V<v>_S<s>)")
    parser.add_argument("--gan", required=True, help="the generator's folder in it (e.g. given_<hash>)")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="which seed's filtered pool (default: 0)")
    add_output_args(parser, NAME, what="the picture (PNG)", committed=COMMITTED)
    args = parser.parse_args(argv)
    out = output_path(args, NAME, committed=COMMITTED)
    space = embedded_label_space()
    study, gan = args.study, args.study / args.gan
    filtered = gan / f"pool_n4_f_m1.25_seed{args.seed}"
    rows = []
    for i in range(args.rows):
        name = f"training/scene_{i:06d}"
        labels = space.to_contiguous(read_label_map(study / "data" / "annotations" / f"{name}.png"))
        first = read_rgb(gan / "pool_n4" / "images" / f"{name}_s0.jpg")
        dropped = read_label_map(filtered / "annotations" / f"{name}_s0.png") != read_label_map(
            gan / "pool_n4" / "annotations" / f"{name}_s0.png")
        marked = first.copy()
        marked[dropped] = (255, 0, 255)
        new_map = space.to_contiguous(read_label_map(study / "layouts_k4_maps" / f"{name}_l0.png"))
        tiles = [space.colorize(labels), read_rgb(study / "data" / "images" / f"{name}.jpg"),
                 read_rgb(study / "oracle_n4" / "images" / f"{name}_s0.jpg"), first,
                 read_rgb(gan / "pool_n4" / "images" / f"{name}_s1.jpg"), marked, space.colorize(new_map),
                 read_rgb(gan / "layouts_k4" / "images" / f"{name}_l0_s0.jpg")]
        gap = np.full((tiles[0].shape[0], 2, 3), 255, np.uint8)
        rows.append(np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1))
    hgap = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([x for r in rows for x in (r, hgap)][:-1], axis=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
