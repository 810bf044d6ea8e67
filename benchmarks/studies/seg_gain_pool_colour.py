"""Colour statistics of the segmentation-gain study's pools: each generator's images against the labelled real ones.

Reads the pools that ``bench_seg_gain.py`` left in ``--work-dir`` (``<gan folder>/pool_n<k>``; the renderer's
``oracle_n<k>``) and the study's real training images, and reports the toolkit's colour metrics
(:mod:`dpsims_aug.metrics.colour`: per-class colour distance, contrast ratio, near-white / near-black rates) plus
the mean saturation (max - min channel), which shows washed-out images. Measures images, trains nothing.

    python benchmarks/studies/seg_gain_pool_colour.py --work-dir work_dirs/seg_gain_bundled \\
        --gan "bundled=given_0de63888ff7d" "from scratch=gan_i1000" "oracle=oracle_n4"

Writes ``work_dirs/benchmarks/seg_gain_pool_colour.json`` (``--update-results``: the committed
``benchmarks/results/seg_gain_pool_colour.json``; ``--results STEM``: any path) and prints the table.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import (  # noqa: E402  (benchmarks/common.py)
    add_output_args,
    add_study_args,
    output_path,
    repo_relative,
    results_paths,
    study_folder,
    write_results,
)

from dpsims_aug.data.readers import find_pairs
from dpsims_aug.label_maps import load_label_map, open_image
from dpsims_aug.labels import get_label_space
from dpsims_aug.metrics.colour import ColourStatistics, compare

NAME = "seg_gain_pool_colour"


def image_set(root: Path, label_space) -> tuple[ColourStatistics, float]:
    """Colour statistics and mean saturation of every (image, label map) pair of the ADE-20K-format set at ``root``."""
    stats = ColourStatistics(label_space.num_classes, label_space.ignore_index)
    saturation = []
    for image_path, label_path in find_pairs(root, dataset_format="ade20k", split="train"):
        image = np.asarray(open_image(image_path).convert("RGB"))
        stats.update(image, load_label_map(label_path, label_space))
        saturation.append(float((image.max(-1).astype(np.int16) - image.min(-1)).mean()))
    return stats, float(np.mean(saturation))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_study_args(parser, seg_iters=False)
    parser.add_argument("--n", type=int, default=4, help="pool size per label map (default: 4)")
    parser.add_argument("--gan", nargs="+", required=True, metavar="LABEL=FOLDER",
                        help="generator stage folders (gan_i<iters>[_<hash>], given_<hash>) or oracle_n<k>")
    add_output_args(parser, NAME, "--results", "results path without extension (.json is written)")
    args = parser.parse_args(argv)
    stage_root = study_folder(args.work_dir, args.labelled, domain=args.domain)
    space = get_label_space("embedded")
    real, real_saturation = image_set(stage_root / "data", space)
    rows = {}
    for spec in args.gan:
        label, _, folder = spec.partition("=")
        pool = stage_root / folder if folder.startswith("oracle") else stage_root / folder / f"pool_n{args.n}"
        if not pool.is_dir():
            raise SystemExit(f"error: {pool}: no such pool")
        fake, saturation = image_set(pool, space)
        metrics = compare(fake, real)
        rows[label] = dict(pool=repo_relative(str(pool)), images=len(fake.contrasts),
                           colour_class_distance=round(metrics["colour_class_distance"], 1),
                           contrast_ratio=round(metrics["contrast_ratio"], 2),
                           near_white_percent=round(100 * metrics["clipped_white_fake"], 2),
                           near_black_percent=round(100 * metrics["clipped_black_fake"], 2),
                           saturation=round(saturation, 1))
    result = dict(report="colour statistics of the study's pools against the labelled real images",
                  command=shlex.join(["python", "benchmarks/studies/seg_gain_pool_colour.py", *(argv or sys.argv[1:])]),
                  work_dir=repo_relative(str(args.work_dir.absolute())), labelled=args.labelled, n=args.n,
                  real=dict(images=len(real.contrasts), near_white_percent=round(100 * real.white_rate, 2),
                            near_black_percent=round(100 * real.black_rate, 2), saturation=round(real_saturation, 1)),
                  pools=rows)
    out_json = results_paths(output_path(args, NAME))[1]
    write_results(out_json, result)
    print(f"written {repo_relative(str(out_json))}\n")
    print(f"{'pool':34s} {'colour dist':>11s} {'contrast':>8s} {'white %':>7s} {'black %':>7s} {'saturation':>10s}")
    print(f"{'real (labelled images)':34s} {'':>11s} {1.0:8.2f} {100 * real.white_rate:7.2f} "
          f"{100 * real.black_rate:7.2f} {real_saturation:10.1f}")
    for label, r in rows.items():
        print(f"{label:34s} {r['colour_class_distance']:11.1f} {r['contrast_ratio']:8.2f} "
              f"{r['near_white_percent']:7.2f} {r['near_black_percent']:7.2f} {r['saturation']:10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
