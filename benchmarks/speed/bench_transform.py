"""Online synthesis's cost per mmseg training iteration on the CPU, per segmenter, beside the pool's.

The embedded data (64x64 label maps, crop 128, batch 4) with three segmenters: Fast-SCNN (the embedded config),
SegFormer-B0 and DeepLabV3+ R50-D8 (the ADE-20K configs' models with the embedded classes and data preprocessor,
random init: the step cost is that of the trained model). Four pipelines each, trained for a few iterations in
rounds (baseline, pool, online, batch, baseline, ...) so that drift of a shared machine hits all of them alike:

* ``baseline``: real images only;
* ``pool``: ``DPSIMSPoolAugment(prob=0.5)`` reading a pool written by ``dpsims-aug generate``;
* ``online``: ``DPSIMSAugment(prob=0.5)``, the worker transform: one sample at a time in the data pipeline;
* ``batch``: ``DPSIMSSelect(prob=0.5)`` in the pipeline and ``DPSIMSDataPreprocessor``: the batch's replaced
  samples rendered in one forward in the model's data preprocessor (the GPU form; here on the CPU).

Online and batch use the bundled generator (or, if it is not installed, a randomly initialized generator of the
same 'small' preset: same compute). ``num_workers=0``: synthesis runs in the training process, so its cost shows
fully in the iteration time (with workers the worker transform overlaps the model step and hides partly).
Reported per segmenter: median wall seconds per iteration (``train/time`` of mmengine's IterTimerHook) and median
process CPU seconds per iteration (all threads; first iterations of each run dropped), overheads vs baseline, and
for online and batch the synthesis CPU seconds per replaced image (the CPU overhead over the expected number of
replaced samples, batch x 0.5). On a shared machine other jobs inflate wall times, not this process's CPU time:
compare the CPU figures. Writes
``work_dirs/benchmarks/transform_overhead.json`` (``--update-results``: the committed
``benchmarks/results/transform_overhead.json``; ``--out``: any path); prints a short table last.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/speed/bench_transform.py [--quick] [--models fastscnn ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import REPO, add_output_args, loadavg, machine_info, output_path, write_results  # noqa: E402  (benchmarks/common.py)

WORK = REPO / "work_dirs" / "bench_transform"  # data, pool and runs (the results file: see output_path)
NAME = "transform_overhead.json"
CONFIG = REPO / "augment" / "embedded" / "fastscnn_embedded_real.py"


def prepare(n_train: int) -> tuple[Path, Path, Path, str]:
    """Embedded data (64x64, ADE-20K format), a generator checkpoint and a pool with 2 images per label map."""
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
    from dpsims_aug.checkpoint import file_sha256

    pool = WORK / f"pool_{n_train}_{file_sha256(ckpt)[:12]}"  # a pool holds one checkpoint's images
    generate(labels=data, n=2, out=pool, checkpoint=ckpt, split="train", progress=False, workers=1)
    return data, ckpt, pool, source


SEGMENTERS = {  # name -> the model base whose architecture replaces Fast-SCNN's (None: the embedded config's own)
    "fastscnn": None,
    "segformer-b0": "segformer_mit-b0.py",
    "deeplabv3plus-r50": "deeplabv3plus_r50-d8.py",
}
PROB = 0.5  # share of replaced samples in the online, batch and pool variants
BATCH = 4  # the embedded config's batch size


def _plain_bn(node):
    """The config with SyncBN (multi-GPU) replaced by BN, which trains in one CPU process."""
    if isinstance(node, dict):
        return {k: ("BN" if k == "type" and v == "SyncBN" else _plain_bn(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain_bn(v) for v in node]
    return node


def segmenter_model(name: str, embedded_model: dict) -> dict:
    """The mmseg model dict of segmenter ``name`` for the embedded data: its architecture, random init (nothing
    downloaded), the embedded config's classes and data preprocessor."""
    from mmengine.config import Config

    base = SEGMENTERS[name]
    if base is None:
        return embedded_model
    model = _plain_bn(Config.fromfile(str(REPO / "augment" / "_base_" / "models" / base)).model.to_dict())
    model.update(pretrained=None, data_preprocessor=dict(embedded_model["data_preprocessor"]))
    model["backbone"].pop("init_cfg", None)
    classes = embedded_model["decode_head"]["num_classes"]
    for head in ("decode_head", "auxiliary_head"):
        if head in model:
            model[head]["num_classes"] = classes
    return model


def _cpu_time_hook():
    """An mmengine hook recording the process CPU seconds of each training iteration (all threads): unlike wall
    time, barely changed by other jobs on a shared machine."""
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS

    class IterCpuTimeHook(Hook):
        # From one iteration's end to the next: the loop loads the batch (the pipeline, where the worker
        # transform runs with num_workers=0) before the iteration's hooks, as IterTimerHook's 'time' counts it.
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def before_train(self, runner) -> None:
            self._last = time.process_time()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            now = time.process_time()
            self.seconds.append(now - self._last)
            self._last = now

    HOOKS.register_module(name="IterCpuTimeHook", module=IterCpuTimeHook, force=True)
    return IterCpuTimeHook


def run(segmenter: str, variant: str, data: Path, ckpt: Path, pool: Path, iters: int,
        work_dir: Path) -> tuple[list[float], list[float]]:
    """Wall and process CPU seconds of each training iteration of one short run."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from dpsims_aug.mm.batch_synthesis import PACK_META_KEYS

    cfg = Config.fromfile(str(CONFIG))
    cfg.work_dir = str(work_dir)
    cfg.model = segmenter_model(segmenter, cfg.model.to_dict())
    steps = [dict(s) for s in cfg.train_dataloader.dataset.pipeline]
    at = [s["type"] for s in steps].index("LoadAnnotations") + 1
    if variant == "online":
        steps.insert(at, dict(type="DPSIMSAugment", checkpoint=str(ckpt), prob=PROB, device="cpu"))
    elif variant == "pool":
        steps.insert(at, dict(type="DPSIMSPoolAugment", pool=str(pool), prob=PROB, on_missing="error"))
    elif variant == "batch":
        pack = [s["type"] for s in steps].index("PackSegInputs")
        steps[pack] = dict(steps[pack], meta_keys=PACK_META_KEYS)
        steps.insert(pack, dict(type="DPSIMSSelect", checkpoint=str(ckpt), prob=PROB))
        cfg.model["data_preprocessor"] = dict(cfg.model["data_preprocessor"], type="DPSIMSDataPreprocessor",
                                              checkpoint=str(ckpt))
        cfg.custom_imports = dict(imports=["dpsims_aug.mm", "dpsims_aug.mm.batch_synthesis"],
                                  allow_failed_imports=False)
    cfg.train_dataloader.dataset.update(data_root=str(data), pipeline=steps)
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False, batch_size=BATCH)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=10**9)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=10**9, by_epoch=False)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=10**9)
    cfg.default_hooks.pop("visualization", None)
    cfg.log_level = "WARNING"
    runner = Runner.from_cfg(cfg)
    cpu = _cpu_time_hook()()
    runner.register_hook(cpu, priority="VERY_HIGH")
    runner.train()
    return [float(t) for t in runner.message_hub.get_scalar("train/time").data[0]], cpu.seconds


def summarize(times: dict[str, list[float]], cpu: dict[str, list[float]]) -> dict[str, dict]:
    """Per variant: median wall and CPU seconds per iteration, overheads vs baseline, and synthesis CPU seconds per
    replaced image (the CPU figures are the ones to compare on a shared machine)."""
    base, base_cpu = statistics.median(times["baseline"]), statistics.median(cpu["baseline"])
    rows = {}
    for v, ts in times.items():
        median, median_cpu = statistics.median(ts), statistics.median(cpu[v])
        row = dict(median_s_per_iter=round(median, 4), median_cpu_s_per_iter=round(median_cpu, 4),
                   iterations=len(ts), overhead_pct=round(100.0 * (median / base - 1.0), 1),
                   cpu_overhead_pct=round(100.0 * (median_cpu / base_cpu - 1.0), 1))
        if v in ("online", "batch"):
            row["cpu_s_per_replaced_image"] = round((median_cpu - base_cpu) / (BATCH * PROB), 4)
        rows[v] = row
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 6 iterations per variant")
    parser.add_argument("--models", nargs="+", choices=sorted(SEGMENTERS), default=list(SEGMENTERS),
                        help="segmenters (default: all)")
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
    variants = ("baseline", "pool", "online", "batch")
    results = {}
    for segmenter in args.models:
        times: dict[str, list[float]] = {v: [] for v in variants}
        cpu: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(args.rounds):
            for v in variants:
                t, c = run(segmenter, v, data, ckpt, pool, args.iters, WORK / f"runs/{segmenter}/{v}_{r}")
                times[v] += t[args.warmup:]
                cpu[v] += c[args.warmup:]
                print(f"{segmenter} round {r} {v}: median {statistics.median(t[args.warmup:]):.3f} s/iter, "
                      f"{statistics.median(c[args.warmup:]):.3f} CPU s/iter", file=sys.stderr)
        results[segmenter] = summarize(times, cpu)
    command = "OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/speed/bench_transform.py" + (
        " --quick" if args.quick else "") + ("" if args.models == list(SEGMENTERS) else " --models " + " ".join(
            args.models))
    result = dict(
        benchmark="Online synthesis (worker transform vs batch preprocessor) and pool: cost per mmseg training "
                  "iteration (CPU)",
        command=command,
        config="augment/embedded/fastscnn_embedded_real.py with the segmenter's model (random init), crop 128, "
               f"batch {BATCH}, num_workers=0",
        segmenters={k: (f"augment/_base_/models/{v}" if v else "Fast-SCNN (the embedded config)")
                    for k, v in SEGMENTERS.items() if k in args.models},
        data="embedded scenes, ADE-20K format, 64x64, 32 training label maps; pool: generate --n 2",
        transform=dict(prob=PROB, generator=source, device="cpu", online_size_policy="resize",
                       batch_synthesis_dtype="fp32 (auto on CPU)"),
        iters_per_run=args.iters, rounds=args.rounds, warmup_dropped=args.warmup,
        results=results,
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
    print(f"{'segmenter':<18} {'variant':<9} {'s/iter':>7} {'overhead':>9} {'CPU s/iter':>11} {'CPU overhead':>13} "
          f"{'CPU s/synth img':>16} {'iters':>6}")
    for segmenter, rows in results.items():
        for v, row in rows.items():
            per = row.get("cpu_s_per_replaced_image")
            print(f"{segmenter:<18} {v:<9} {row['median_s_per_iter']:>7.3f} {row['overhead_pct']:>8.1f}% "
                  f"{row['median_cpu_s_per_iter']:>11.3f} {row['cpu_overhead_pct']:>12.1f}% "
                  f"{'' if per is None else f'{per:.3f}':>16} {row['iterations']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
