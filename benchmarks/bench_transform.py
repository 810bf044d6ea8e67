"""DPSIMSAugment's cost per mmseg training iteration on the CPU (embedded config, Fast-SCNN, crop 128, batch 4).

Three pipelines of augment/embedded/fastscnn_embedded_real.py are trained for a few iterations each, in rounds
(baseline, pool, online, baseline, ...) so that drift of a shared machine hits all of them alike:

* ``baseline``: real images only;
* ``pool``: ``DPSIMSAugment(mode='pool', prob=0.5)`` reading a pool written by ``dpsims-aug generate``;
* ``online``: ``DPSIMSAugment(prob=0.5)`` synthesizing on the CPU with the bundled generator (or, if it is not
  installed yet, a randomly initialized generator of the same 'small' preset: same compute).

``num_workers=0``: the transform runs in the training process, so its cost shows fully in the iteration time
(with workers it overlaps the model step and hides partly). Reported: median seconds per iteration (``train/time``
of mmengine's IterTimerHook, first iterations of each run dropped), overhead vs baseline. Writes
``work_dirs/benchmarks/transform_overhead.json`` (``--update-results``: the committed
``benchmarks/results/transform_overhead.json``; ``--out``: any path); prints a short table last.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/bench_transform.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from common import REPO, add_output_args, loadavg, machine_info, output_path, write_results  # benchmarks/common.py

WORK = REPO / "work_dirs" / "bench_transform"  # data, pool and runs (the results file: see output_path)
NAME = "transform_overhead.json"
CONFIG = REPO / "augment" / "embedded" / "fastscnn_embedded_real.py"


def prepare(n_train: int) -> tuple[Path, Path, Path, str]:
    """Embedded data (64x64 ADE layout), a generator checkpoint and a pool with 2 images per label map."""
    import torch

    from dpsims_aug.checkpoint import GeneratorCheckpoint, save_generator_checkpoint
    from dpsims_aug.data.writers import write_dataset
    from dpsims_aug.labels import embedded_label_space
    from dpsims_aug.models import DPSIMSGenerator, generator_config
    from dpsims_aug.pool.writer import generate
    from dpsims_aug.synthesis import default_checkpoint_path

    data = WORK / f"data_{n_train}"
    write_dataset(data, "ade20k", n_train=n_train, n_val=0, size=(64, 64))
    ckpt = default_checkpoint_path()
    source = "bundled"
    if not ckpt.is_file():
        ckpt = WORK / "small_random.safetensors"
        source = "random-init 'small' preset (bundled checkpoint not installed)"
        if not ckpt.is_file():
            torch.manual_seed(0)
            space = embedded_label_space()
            g = DPSIMSGenerator(generator_config("small", num_classes=space.num_classes))
            save_generator_checkpoint(ckpt, GeneratorCheckpoint(g.state_dict(), g.config.to_dict(), space, {}))
    pool = WORK / f"pool_{n_train}_{source.split()[0]}"
    generate(labels=data, n=2, out=pool, checkpoint=ckpt, split="train", progress=False, workers=1)
    return data, ckpt, pool, source


def run(variant: str, data: Path, ckpt: Path, pool: Path, iters: int, work_dir: Path) -> list[float]:
    """Seconds of each training iteration of one short run."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(CONFIG))
    cfg.work_dir = str(work_dir)
    steps = list(cfg.train_dataloader.dataset.pipeline)
    at = [s["type"] for s in steps].index("LoadAnnotations") + 1
    if variant == "online":
        steps.insert(at, dict(type="DPSIMSAugment", checkpoint=str(ckpt), prob=0.5, device="cpu"))
    elif variant == "pool":
        steps.insert(at, dict(type="DPSIMSAugment", mode="pool", pool=str(pool), prob=0.5, on_missing="error"))
    cfg.train_dataloader.dataset.update(data_root=str(data), pipeline=steps)
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=10**9)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=10**9, by_epoch=False)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=10**9)
    cfg.default_hooks.pop("visualization", None)
    cfg.log_level = "WARNING"
    runner = Runner.from_cfg(cfg)
    runner.train()
    return [float(t) for t in runner.message_hub.get_scalar("train/time").data[0]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 6 iterations per variant")
    parser.add_argument("--iters", type=int, default=12, help="iterations per run (default: 12)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per variant, interleaved (default: 3)")
    parser.add_argument("--warmup", type=int, default=2, help="iterations dropped per run (default: 2)")
    add_output_args(parser, NAME)
    args = parser.parse_args(argv)
    if args.quick:
        args.iters, args.rounds = 6, 1
    load_start = loadavg()
    started = time.time()
    data, ckpt, pool, source = prepare(n_train=32)
    variants = ("baseline", "pool", "online")
    times: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            t = run(v, data, ckpt, pool, args.iters, WORK / f"runs/{v}_{r}")
            times[v] += t[args.warmup:]
            print(f"round {r} {v}: median {statistics.median(t[args.warmup:]):.3f} s/iter", file=sys.stderr)
    base = statistics.median(times["baseline"])
    rows = {
        v: dict(median_s_per_iter=round(statistics.median(ts), 4), iterations=len(ts),
                overhead_pct=round(100.0 * (statistics.median(ts) / base - 1.0), 1))
        for v, ts in times.items()
    }
    result = dict(
        benchmark="DPSIMSAugment overhead per mmseg training iteration (CPU)",
        command="OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/bench_transform.py"
                + (" --quick" if args.quick else ""),
        config="augment/embedded/fastscnn_embedded_real.py (Fast-SCNN, crop 128, batch 4, num_workers=0)",
        data="embedded scenes, ADE layout, 64x64, 32 training label maps; pool: generate --n 2",
        transform=dict(prob=0.5, online_generator=source, online_device="cpu", online_size_policy="resize"),
        iters_per_run=args.iters, rounds=args.rounds, warmup_dropped=args.warmup,
        results=rows,
        pool_under_5pct=rows["pool"]["overhead_pct"] < 5.0,
        machine=machine_info(
            omp_num_threads=os.environ.get("OMP_NUM_THREADS"), shared=True,
            note="shared 2-core machine (other jobs may run; see the load averages): compare ratios, not times",
            loadavg_start=load_start,
        ),
        seconds=round(time.time() - started, 1),
    )
    out = output_path(args, NAME)
    write_results(out, result)
    print(f"\nwritten {out}")
    print(f"{'variant':<10} {'s/iter (median)':>16} {'overhead':>9} {'iters':>6}")
    for v, row in rows.items():
        print(f"{v:<10} {row['median_s_per_iter']:>16.3f} {row['overhead_pct']:>8.1f}% {row['iterations']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
