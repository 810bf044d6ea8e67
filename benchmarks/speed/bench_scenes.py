"""Speed of the embedded procedural dataset: N scenes rendered and WRITTEN in the ADE-20K format (JPEG + PNG).

    python benchmarks/speed/bench_scenes.py                    # 1000 scenes at 128x128, median of 3 runs -> JSON
    python benchmarks/speed/bench_scenes.py --update-results   # the same, into the committed results
    python benchmarks/speed/bench_scenes.py --quick            # 100 scenes, 1 run, prints only

Results: ``work_dirs/benchmarks/scenes_speed.json``; ``--update-results`` writes the committed
``benchmarks/results/scenes_speed.json``, ``--out`` any path (``--quick`` writes only to an explicit ``--out``).

Target: 1000 scenes at 128x128 in under 30 s on the project's 2-core CPU machine. The machine is shared and
noisy, so the median of several runs is reported with every run, plus a render-only figure (no disk) from the
same process to show where the time goes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import add_output_args, loadavg, machine_info, output_path, write_results  # noqa: E402  (benchmarks/common.py)

from dpsims_aug.data.scenes import iter_scenes
from dpsims_aug.data.writers import write_dataset

TARGET_S = 30.0
NAME = "scenes_speed.json"


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the result dict (also written as JSON unless ``--quick``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="scenes per run (default 1000)")
    p.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    p.add_argument("--runs", type=int, default=3, help="timed runs; the median is reported")
    p.add_argument("--quick", action="store_true", help="100 scenes, 1 run, no results file")
    add_output_args(p, NAME)
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.runs = 100, 1
    size = tuple(args.size)

    load_start = loadavg()  # shared machine: other jobs inflate the timings
    times = []
    for r in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench_scenes_") as tmp:
            t0 = time.perf_counter()
            summary = write_dataset(Path(tmp) / "ade", "ade20k", args.n, 0, size, seed=r)
            times.append(time.perf_counter() - t0)
            assert summary["written"] == args.n
    n_render = min(args.n, 200)
    t0 = time.perf_counter()
    for _ in iter_scenes(n_render, size, seed=0):
        pass
    render_ms = (time.perf_counter() - t0) / n_render * 1e3

    median = statistics.median(times)
    result = dict(
        benchmark="embedded scenes written in the ADE-20K format (JPEG q95 + PNG raw ids), single process",
        n_images=args.n,
        size=list(size),
        runs=[round(t, 3) for t in times],
        seconds=round(median, 3),
        images_per_s=round(args.n / median, 1),
        ms_per_image=round(median / args.n * 1e3, 2),
        render_only_ms_per_image=round(render_ms, 2),
        target_s=TARGET_S * args.n / 1000,
        meets_target=median < TARGET_S * args.n / 1000,
        command=" ".join(["python", os.path.relpath(__file__), *(sys.argv[1:] if argv is None else argv)]),
        machine=machine_info(numpy=np.__version__, loadavg_start=load_start),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    out = None if args.quick and args.out is None else output_path(args, NAME)
    if out is not None:
        write_results(out, result)

    verdict = "met" if result["meets_target"] else "MISSED"
    rows = [
        ("scenes x size", f"{args.n} x {size[0]}x{size[1]}"),
        ("runs (s)", ", ".join(f"{t:.2f}" for t in times)),
        ("median (s)", f"{median:.2f}  (target < {result['target_s']:.0f} s: {verdict})"),
        ("images/s", f"{result['images_per_s']:.1f}"),
        ("ms/image written", f"{result['ms_per_image']:.2f}"),
        ("ms/image render only", f"{render_ms:.2f}"),
        (
            "machine",
            f"{result['machine']['cpu']}, {result['machine']['cpus']} cores, load avg "
            f"{load_start[0]} -> {result['machine']['loadavg'][0]}",
        ),
    ]
    if out is not None:
        rows.append(("results", str(out)))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    return result


if __name__ == "__main__":
    main()
