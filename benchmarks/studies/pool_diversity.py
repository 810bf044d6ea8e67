"""How different are a pool's images of one label map? Appearance spread per label map, pool against pool.

For every label map with k >= 2 images in a pool (``dpsims-aug generate`` or the study's oracle pool), two figures
over its k images, averaged over the label maps (uint8 RGB scale, 0..255):

* ``pixel_std``: the standard deviation across the k images at each pixel and channel, averaged over pixels;
* ``colour_std``: the standard deviation across the k images of each image's mean colour, averaged over channels
  (global light and palette: what changes when the scene is lit differently).

A generator that ignores its noise gives 0; the renderer's new appearances of the same layouts (the oracle) say how
much a segmenter could get. Pixel-level, not perceptual: compare pools of the same label maps and size only.

    .venv/bin/python benchmarks/studies/pool_diversity.py --pool oracle=work_dirs/xd/L16_V200_S64_snow/oracle_n4 \\
        --pool own=work_dirs/xd/L16_V200_S64_snow/gan_i1000/pool_n4 [--update-results]

Writes ``work_dirs/benchmarks/pool_diversity.json`` (``--update-results``: the committed
``benchmarks/results/pool_diversity.json``; ``--out``: any path) and prints a table.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import add_output_args, machine_info, output_path, repo_relative, write_results  # noqa: E402  (benchmarks/common.py)

NAME = "pool_diversity.json"
_SAMPLE = re.compile(r"^(?P<stem>.+)_s(?P<k>\d+)$")  # images/<stem>_s<k>.<ext>, as generate names them


def pool_images(pool: Path) -> dict[str, list[Path]]:
    """Image files of a pool grouped by label map (their path under ``images/`` without the ``_s<k>`` suffix)."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in sorted((pool / "images").rglob("*")):
        match = _SAMPLE.match(path.stem) if path.suffix.lower() in (".jpg", ".png") else None
        if match:
            groups[str(path.parent.relative_to(pool / "images") / match["stem"])].append(path)
    return groups


def spread(pool: Path) -> dict:
    """``pixel_std`` and ``colour_std`` of one pool (see the module docstring)."""
    from PIL import Image

    pixel, colour = [], []
    groups = {k: v for k, v in pool_images(pool).items() if len(v) >= 2}
    if not groups:
        raise SystemExit(f"error: {pool} has no label map with 2 or more images (images/<name>_s<k>.jpg|png)")
    for paths in groups.values():
        images = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) for p in paths])
        pixel.append(float(images.std(0).mean()))
        colour.append(float(images.mean((1, 2)).std(0).mean()))
    return dict(label_maps=len(groups), images_per_map=round(float(np.mean([len(v) for v in groups.values()])), 2),
                pixel_std=round(float(np.mean(pixel)), 2), colour_std=round(float(np.mean(colour)), 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", action="append", required=True, metavar="NAME=DIR",
                        help="a pool to measure, with the name it gets in the table (repeat)")
    add_output_args(parser, NAME)
    args = parser.parse_args(argv)
    started = time.time()
    pools = {}
    for item in args.pool:
        name, sep, folder = item.partition("=")
        if not sep or not Path(folder).is_dir():
            parser.error(f"--pool {item!r}: expected NAME=DIR with an existing folder")
        pools[name] = dict(folder=repo_relative(folder), **spread(Path(folder)))
    result = dict(benchmark="appearance spread between a pool's images of the same label map",
                  command="python benchmarks/studies/pool_diversity.py " + " ".join(
                      f"--pool {n}={p['folder']}" for n, p in pools.items()),
                  pools=pools, machine=machine_info(), seconds=round(time.time() - started, 1))
    out = output_path(args, NAME)
    write_results(out, result)
    print(f"written {out}")
    print(f"{'pool':<20} {'pixel_std':>9} {'colour_std':>10} {'maps':>5}")
    for name, row in pools.items():
        print(f"{name:<20} {row['pixel_std']:>9.1f} {row['colour_std']:>10.1f} {row['label_maps']:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
