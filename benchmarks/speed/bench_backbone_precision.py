"""Does the frozen discriminator backbone get faster in bf16 or channels_last on this CPU?

The backbone's weights get no gradients (frozen), but the generator's update back-propagates through it to the
images, so its forward + input-backward is part of every training step. This times exactly that, for the
embedded_small shapes (EfficientNet-Lite0, 16 images of 64x64: the two seeds of a batch of 8), in fp32,
channels_last and bf16 autocast, interleaved (so drift of a shared machine hits every variant alike), and reports
medians and same-run ratios. It also reports how far the bf16 features are from the fp32 ones.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/speed/bench_backbone_precision.py [--repeats 15]

Results: ``work_dirs/benchmarks/backbone_precision.json``; ``--update-results`` writes the committed
``benchmarks/results/backbone_precision.json``, ``--out`` any path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import add_output_args, machine_info, output_path, repo_relative, write_results  # noqa: E402  (benchmarks/common.py)

VARIANTS = ("fp32", "channels_last", "bf16_autocast")
NAME = "backbone_precision.json"


def step(backbone, images: torch.Tensor, variant: str) -> float:
    """Seconds of one forward + backward to the images."""
    x = images.detach().clone().requires_grad_(True)
    inp = x.contiguous(memory_format=torch.channels_last) if variant == "channels_last" else x
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16_autocast"):
        feats = backbone(inp)
    sum(f.float().square().mean() for f in feats).backward()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    add_output_args(parser, NAME)
    args = parser.parse_args(argv)
    from dpsims_aug.backbones import FrozenBackbone

    backbone = FrozenBackbone.from_name("tf_efficientnet_lite0", "offline")
    images = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(args.repeats + 1):
        for variant in VARIANTS:
            fmt = torch.channels_last if variant == "channels_last" else torch.contiguous_format
            backbone.model.to(memory_format=fmt)
            seconds = step(backbone, images, variant)
            if r > 0:  # the first round warms up every variant
                times[variant].append(seconds)
    backbone.model.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        ref = backbone(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = backbone(images)
    rel_err = max(float((a - b.float()).norm() / a.norm()) for a, b in zip(ref, low))
    medians = {v: statistics.median(t) for v, t in times.items()}
    result = dict(
        benchmark="frozen backbone forward + backward to the images (what G's update costs inside D)",
        command=f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} python "
                f"benchmarks/speed/bench_backbone_precision.py --repeats {args.repeats}",
        settings=dict(backbone="tf_efficientnet_lite0", batch=args.batch, size=args.size, repeats=args.repeats,
                      threads=torch.get_num_threads()),
        median_seconds={v: round(m, 4) for v, m in medians.items()},
        speedup_vs_fp32={v: round(medians["fp32"] / m, 3) for v, m in medians.items()},
        bf16_feature_relative_error=round(rel_err, 4),
        machine=machine_info(),
    )
    out = output_path(args, NAME)
    write_results(out, result)
    print(f"{'variant':<15} {'median s':>9} {'speed-up':>9}")
    for v in VARIANTS:
        print(f"{v:<15} {medians[v]:>9.4f} {result['speedup_vs_fp32'][v]:>9.3f}")
    print(f"bf16 features: relative error {rel_err:.4f}; written {repo_relative(str(out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
