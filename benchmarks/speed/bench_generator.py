"""Generator speed on CPU: DP-SIMS (``ade20k`` preset) vs an OASIS re-implementation, in the same run.

For each model, dtype (fp32; bf16 via ``torch.autocast('cpu')``) and batch size: median images/s over
several timed runs (after warm-up) of the inference-prepared model under ``torch.inference_mode()``,
GFLOPs per image (``torch.utils.flop_counter.FlopCounterMode``; convs, matmuls and attention), achieved
GFLOP/s, and this machine's matmul peak measured in the same run (a large ``torch.mm``; a large 3x3 conv is
measured too, since oneDNN convs can beat MKL's mm on some CPUs). The machine may be shared: trust medians
and same-run ratios, not single absolute numbers.

Usage::

    python benchmarks/speed/bench_generator.py            # full: batch 1 and 8, fp32 and bf16, 5 runs
    python benchmarks/speed/bench_generator.py --quick    # batch 1, 2 runs (a smoke test, ~1 minute)

Writes ``work_dirs/benchmarks/generator_speed.json`` (``--update-results``: the committed
``benchmarks/results/generator_speed.json``; ``--out``: any path) and prints a table last: median images/s
(``img/s``, the headline number), best-of-runs images/s (``best``, least disturbed by other load), achieved
GFLOP/s and fraction of the same-run fp32/bf16 mm peak from the median, and the same-run speedup over OASIS
(ratio of medians).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder: oasis_reference.py
from common import add_output_args, machine_info, output_path, write_results  # noqa: E402
from oasis_reference import OASISGenerator  # noqa: E402

from dpsims_aug.models import DPSIMSGenerator, GeneratorConfig, generator_config  # noqa: E402

OASIS_PUBLISHED = {"gflops_per_image": 389.0, "params_m": 74.0}
TARGET_SPEEDUP = 2.0
TARGET_PEAK_FRACTION = 0.6
NAME = "generator_speed.json"


def _median_seconds(fn: Callable[[], object], runs: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median and all wall times of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


# Precision modes: fp32; bf16 = autocast with weights pre-cast to bf16 by prepare_for_inference (no per-call
# weight casts); bf16-autocast = autocast over the fp32 model (casts every weight on every call).
DTYPES = ("fp32", "bf16", "bf16-autocast")


def _autocast(dtype: str) -> contextlib.AbstractContextManager:
    if dtype.startswith("bf16"):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def measure_peaks(runs: int, size: int) -> dict[str, float]:
    """GFLOP/s of a square ``torch.mm`` (fp32, bf16) and of a 256->256 3x3 conv on 64x64 (fp32, bf16)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    ab, bb = a.bfloat16(), b.bfloat16()
    mm_flops = 2 * size**3
    x = torch.randn(4, 256, 64, 64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3).contiguous(memory_format=torch.channels_last)
    conv_flops = 2 * 4 * 256 * 256 * 9 * 64 * 64
    out = {}
    with torch.inference_mode():
        out["mm_fp32_gflops"] = mm_flops / _median_seconds(lambda: torch.mm(a, b), runs)[0] / 1e9
        out["mm_bf16_gflops"] = mm_flops / _median_seconds(lambda: torch.mm(ab, bb), runs)[0] / 1e9
        out["conv3x3_fp32_gflops"] = conv_flops / _median_seconds(lambda: F.conv2d(x, w, padding=1), runs)[0] / 1e9
        with torch.autocast("cpu", dtype=torch.bfloat16):
            t = _median_seconds(lambda: F.conv2d(x, w, padding=1), runs)[0]
        out["conv3x3_bf16_gflops"] = conv_flops / t / 1e9
    out["mm_size"] = size
    return out


def _blocky_labels(batch: int, h: int, w: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, num_classes, (batch, h // 16, w // 16), generator=gen)
    return coarse.repeat_interleave(16, 1).repeat_interleave(16, 2)


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``--runs`` and ``--batch-sizes`` default to None (their values depend on ``--quick``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 only, 2 timed runs, smaller mm")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per setting (default 5, quick 2)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default 1 8 (quick: 1)")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES, help="precision modes")
    parser.add_argument("--preset", default="ade20k", help="DP-SIMS generator preset (default ade20k)")
    parser.add_argument("--no-oasis", action="store_true", help="skip the OASIS reference")
    parser.add_argument("--no-channels-last", action="store_true", help="keep NCHW (default: channels_last)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    add_output_args(parser, NAME, what="JSON result file")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark: write the results JSON, then print the summary table."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = args.runs or (2 if args.quick else 5)
    batch_sizes = args.batch_sizes or ([1] if args.quick else [1, 8])
    channels_last = not args.no_channels_last
    peak_size = 2048 if args.quick else 4096

    torch.manual_seed(0)
    cfg = generator_config(args.preset)
    models: dict[str, torch.nn.Module] = {f"dpsims[{args.preset}]": DPSIMSGenerator(cfg)}
    if not args.no_oasis:
        models["oasis"] = OASISGenerator(cfg.num_classes, use_instance_edges=cfg.use_instance_edges)
    info = _count_and_prepare(models, cfg, channels_last)
    bf16_models = {
        name: copy.deepcopy(model).prepare_for_inference(channels_last=channels_last, dtype=torch.bfloat16)
        for name, model in models.items()
    }

    # Peaks before and after the model runs; the higher (less disturbed by other load) one is the reference.
    peaks_before = measure_peaks(runs=max(3, runs), size=peak_size)
    rows = []
    for dtype in args.dtypes:
        variants = bf16_models if dtype == "bf16" else models
        for batch in batch_sizes:
            feeds = {name: _inputs(cfg, model, batch) for name, model in models.items()}
            times = _time_interleaved(variants, feeds, dtype, runs)
            for name in models:
                rows.append(_row(name, dtype, batch, times[name], info[name]))
                print(f"  {name:16s} {dtype} b{batch}: {rows[-1]['images_per_s']:.3f} img/s", flush=True)
    peaks_after = measure_peaks(runs=max(3, runs), size=peak_size)
    peaks = {k: max(peaks_before[k], peaks_after[k]) for k in peaks_before}
    for r in rows:
        r["fraction_of_mm_peak"] = r["achieved_gflops_per_s"] / peaks[f"mm_{r['dtype'][:4]}_gflops"]

    ours = f"dpsims[{args.preset}]"
    result = _result(cfg, runs, channels_last, [peaks_before, peaks_after], peaks, info, rows, ours)
    out = output_path(args, NAME)
    write_results(out, result, indent=2)
    _print_summary(out, result, ours)


def _inputs(cfg: GeneratorConfig, model: torch.nn.Module, batch: int) -> tuple:
    """Blocky labels, noise and (if the config uses them) empty instance edges for one batch of ``model``."""
    h, w = cfg.image_size
    labels = _blocky_labels(batch, h, w, cfg.num_classes)
    edges = torch.zeros(batch, 1, h, w) if cfg.use_instance_edges else None
    if isinstance(model, DPSIMSGenerator):
        return labels, model.sample_noise(list(range(batch))), edges
    return labels, torch.randn(batch, 64, generator=torch.Generator().manual_seed(0)), edges


def _count_and_prepare(
    models: dict[str, torch.nn.Module], cfg: GeneratorConfig, channels_last: bool
) -> dict[str, dict[str, float]]:
    """Params and GFLOPs per image of each model, then each made inference-ready (fp32) in place."""
    info: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        # FLOPs and params of the training-form model (identical to the folded one for convs/matmuls).
        model.eval()
        # no_grad, not inference_mode: the two modes together break spectral-norm parametrizations (torch 2.14).
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*_inputs(cfg, model, 1))
        info[name] = {
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "gflops_per_image": counter.get_total_flops() / 1e9,
        }
        model.prepare_for_inference(channels_last=channels_last)
    return info


def _time_interleaved(
    variants: dict[str, torch.nn.Module], feeds: dict[str, tuple], dtype: str, runs: int
) -> dict[str, list[float]]:
    """Seconds of each of ``runs`` forwards of every model (after one warm-up each), the models run by run."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode(), _autocast(dtype):
        for name, model in variants.items():  # warm-up: oneDNN primitive creation, allocator
            model(*feeds[name])
        # Models alternate run by run, so a load change on a shared machine hits both alike.
        for _ in range(runs):
            for name, model in variants.items():
                start = time.perf_counter()
                model(*feeds[name])
                times[name].append(time.perf_counter() - start)
    return times


def _row(name: str, dtype: str, batch: int, times: list[float], info: dict[str, float]) -> dict:
    """One results row: median and best images/s and the achieved GFLOP/s of one model, dtype and batch."""
    med = statistics.median(times)
    return {
        "model": name,
        "dtype": dtype,
        "batch": batch,
        "images_per_s": batch / med,
        "images_per_s_best": batch / min(times),
        "seconds_per_batch_median": med,
        "seconds_per_batch_all": times,
        "gflops_per_image": info["gflops_per_image"],
        "achieved_gflops_per_s": info["gflops_per_image"] * batch / med,
        "params_m": info["params_m"],
    }


def _speedups_vs_oasis(rows: list[dict], ours: str) -> dict[str, float]:
    """Our images/s over OASIS's in the same run, per ``<dtype>_b<batch>`` (ratio of medians)."""
    ratios = {}
    for r in rows:
        if r["model"] == "oasis":
            mine = next(x for x in rows if x["model"] == ours and x["dtype"] == r["dtype"] and x["batch"] == r["batch"])
            ratios[f"{r['dtype']}_b{r['batch']}"] = mine["images_per_s"] / r["images_per_s"]
    return ratios


def _targets(rows: list[dict], ratios: dict[str, float], ours: str) -> dict[str, dict]:
    """The fp32 batch-1 targets (speedup over OASIS, fraction of the mm peak), each with whether it is met."""
    fp32_b1 = next((r for r in rows if r["model"] == ours and r["dtype"] == "fp32" and r["batch"] == 1), None)
    targets = {}
    if fp32_b1 is not None:
        if "fp32_b1" in ratios:
            targets["speedup_vs_oasis_fp32_b1"] = {"value": ratios["fp32_b1"], "target": TARGET_SPEEDUP}
        targets["fraction_of_fp32_mm_peak_b1"] = {
            "value": fp32_b1["fraction_of_mm_peak"],
            "target": TARGET_PEAK_FRACTION,
        }
        for t in targets.values():
            t["met"] = t["value"] >= t["target"]
    return targets


def _result(
    cfg: GeneratorConfig,
    runs: int,
    channels_last: bool,
    peaks_before_after: list[dict[str, float]],
    peaks: dict[str, float],
    info: dict[str, dict[str, float]],
    rows: list[dict],
    ours: str,
) -> dict:
    """The results record, with the same-run speedups over OASIS and the targets."""
    ratios = _speedups_vs_oasis(rows, ours)
    return {
        "benchmark": "generator_speed",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(
            affinity_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
        ),
        "settings": {
            "image_size_hw": list(cfg.image_size),
            "runs": runs,
            "warmup": 1,
            "interleaved_models": True,
            "channels_last": channels_last,
            "inference_mode": True,
            "prepare_for_inference": True,
            "statistic": "median",
        },
        "peaks_gflops_per_s": peaks,
        "peaks_before_after": peaks_before_after,
        "models": info,
        "oasis_published": OASIS_PUBLISHED,
        "rows": rows,
        "speedup_vs_oasis_same_run": ratios,
        "targets": _targets(rows, ratios, ours),
        "generator_config": cfg.to_dict(),
    }


def _print_summary(out: Path, result: dict, ours: str) -> None:
    """Where the results went, the same-run peaks, each model's size and cost, then the table of rows."""
    peaks, rows, ratios = result["peaks_gflops_per_s"], result["rows"], result["speedup_vs_oasis_same_run"]
    h, w = result["settings"]["image_size_hw"]
    print(f"\nwrote {out}")
    print(
        f"peaks (same run): mm fp32 {peaks['mm_fp32_gflops']:.0f}, mm bf16 {peaks['mm_bf16_gflops']:.0f}, "
        f"conv3x3 fp32 {peaks['conv3x3_fp32_gflops']:.0f}, conv3x3 bf16 {peaks['conv3x3_bf16_gflops']:.0f} GFLOP/s"
    )
    for name, i in result["models"].items():
        print(f"{name}: {i['params_m']:.1f} M params, {i['gflops_per_image']:.1f} GFLOPs/image at {h}x{w}")
    header = (
        f"{'model':16s} {'dtype':13s} {'batch':>5s} {'img/s':>8s} {'best':>8s} {'GFLOP/s':>8s} {'%mm peak':>8s} "
        f"{'vs OASIS':>8s}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = ratios.get(f"{r['dtype']}_b{r['batch']}") if r["model"] == ours else None
        print(
            f"{r['model']:16s} {r['dtype']:13s} {r['batch']:5d} {r['images_per_s']:8.3f} "
            f"{r['images_per_s_best']:8.3f} "
            f"{r['achieved_gflops_per_s']:8.1f} {100 * r['fraction_of_mm_peak']:7.0f}% "
            f"{(f'{ratio:.2f}x' if ratio else ''):>8s}"
        )


if __name__ == "__main__":
    main()
