"""End-to-end speed of ``dpsims-aug generate`` against the bare generator forward it wraps.

    python benchmarks/speed/bench_generate.py                       # small preset, 128x128, CPU, fp32 -> results JSON
    python benchmarks/speed/bench_generate.py --device cuda --preset ade20k --size 256 256 --maps 256 --dtype bf16
    python benchmarks/speed/bench_generate.py --quick               # a few maps, prints only

Results: ``work_dirs/benchmarks/generate_speed.json``; ``--update-results`` writes the committed
``benchmarks/results/generate_speed.json``, ``--out`` any path (``--quick`` writes nothing).

Three figures on the same label maps, model and batch size (a randomly initialized generator: speed does not
depend on the weights):

* ``forward``: ``DPSIMSGenerator`` forward alone (labels already on the device, inference-prepared model);
* ``synthesizer``: ``Synthesizer.synthesize`` (noise per seed, padding, uint8 conversion, copy back);
* ``generate``: the whole command (checkpoint load, validation of every map, decoding, model, JPEG encoding,
  atomic writes, manifest fsyncs, merge), images/s over its wall time.

Each figure is the best of ``--runs`` interleaved runs (images per wall second, and per process CPU second): on a
shared, noisy machine other jobs only ever make a run slower, so the fastest run is the one that measures this code;
every run is recorded too.

``generate / forward`` is how much of the model's speed survives the I/O around it; the decode and encode threads
overlap with the model, so on a quiet machine it should stay close to 1 when the model dominates.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import add_output_args, cpu_model, loadavg, machine_info, output_path, write_results  # noqa: E402

from dpsims_aug.checkpoint import GeneratorCheckpoint, save_generator_checkpoint
from dpsims_aug.data.scenes import render_layout
from dpsims_aug.label_maps import write_label_map
from dpsims_aug.labels import embedded_label_space
from dpsims_aug.models import DPSIMSGenerator, generator_config
from dpsims_aug.pool.writer import generate
from dpsims_aug.synthesis import Synthesizer, derive_seed

NAME = "generate_speed.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--quick`` is applied to the parsed arguments in :func:`main`)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small", help="generator preset (default: small)")
    p.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    p.add_argument("--maps", type=int, default=32, help="label maps (default: 32)")
    p.add_argument("--n", type=int, default=4, help="images per label map (default: 4)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--runs", type=int, default=3, help="timed runs of each figure; the best is reported")
    p.add_argument("--quick", action="store_true", help="8 maps, 1 run, no results file")
    add_output_args(p, NAME)
    return p


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the result dict (also written as JSON unless ``--quick``)."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.maps, args.runs = 8, 1
    load_start = loadavg()
    device = torch.device(args.device)
    total = args.maps * args.n

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt, maps = _write_inputs(tmp, args)
        figures = _figures(args, tmp, ckpt, maps, device)
        figures["forward"](0)  # warm-up (allocator, oneDNN/cuDNN kernel selection)
        times, cpu_times = _time_figures(figures, args.runs)
        peak_rss_gib = _generate_peak_rss_gib(args, tmp, ckpt)

    result = _result(args, argv, device, total, times, cpu_times, peak_rss_gib, load_start)
    print(json.dumps(result, indent=1))
    if not args.quick:
        write_results(output_path(args, NAME), result)
    return result


def _write_inputs(tmp: Path, args: argparse.Namespace) -> tuple[Path, list[np.ndarray]]:
    """A random generator's checkpoint, and the label maps (contiguous ids; written as raw ids to ``labels/``)."""
    space = embedded_label_space()
    torch.manual_seed(0)
    model = DPSIMSGenerator(generator_config(args.preset, num_classes=space.num_classes))
    ckpt = tmp / "g.safetensors"
    save_generator_checkpoint(ckpt, GeneratorCheckpoint(model.state_dict(), model.config.to_dict(), space))
    maps = [render_layout(1000 + i, tuple(args.size)) for i in range(args.maps)]
    for i, contiguous in enumerate(maps):
        write_label_map(tmp / "labels" / f"scene_{i:05d}.png", space.to_raw(contiguous))
    return ckpt, maps


def _figures(
    args: argparse.Namespace, tmp: Path, ckpt: Path, maps: list[np.ndarray], device: torch.device
) -> dict[str, Callable[[int], None]]:
    """The three figures on the same jobs, each a callable of the run index (``generate`` writes ``out<run>``)."""
    total = args.maps * args.n
    synth = Synthesizer.from_checkpoint(ckpt, device=device, dtype=args.dtype, batch_size=args.batch_size)
    jobs = [(m, derive_seed(0, f"scene_{i:05d}.png", k)) for i, m in enumerate(maps) for k in range(args.n)]
    batches = [jobs[s : s + args.batch_size] for s in range(0, len(jobs), args.batch_size)]
    labels = [torch.from_numpy(np.stack([m for m, _ in b])).long().to(device) for b in batches]
    noises = [synth.generator.sample_noise([s for _, s in b], device=device) for b in batches]
    autocast = torch.autocast(device.type, dtype=synth.dtype, enabled=args.dtype != "fp32")

    def forward() -> None:
        with torch.inference_mode(), autocast:
            for lab, noise in zip(labels, noises):
                synth.generator(lab, noise)
        _sync(device)

    def synthesize() -> None:
        for b in batches:
            synth.synthesize([m for m, _ in b], [s for _, s in b])

    def run_generate(run: int) -> None:
        summary = generate(
            tmp / "labels",
            n=args.n,
            out=tmp / f"out{run}",
            checkpoint=ckpt,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
            workers=args.workers,
            progress=False,
            log=lambda m: None,
        )
        assert summary.generated == total, summary

    return {"forward": lambda run: forward(), "synthesizer": lambda run: synthesize(), "generate": run_generate}


def _time_figures(
    figures: dict[str, Callable[[int], None]], runs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process CPU seconds of every run of every figure, the figures interleaved run by run."""
    times: dict[str, list[float]] = {k: [] for k in figures}
    cpu_times: dict[str, list[float]] = {k: [] for k in figures}
    for run in range(runs):
        for name, fn in figures.items():
            t, c = time.perf_counter(), _cpu_seconds()
            fn(run)
            times[name].append(time.perf_counter() - t)
            cpu_times[name].append(_cpu_seconds() - c)
    return times, cpu_times


def _generate_peak_rss_gib(args: argparse.Namespace, tmp: Path, ckpt: Path) -> float:
    """Peak RSS (GiB) of the children so far, after one ``dpsims-aug generate`` of the same maps in a subprocess."""
    # Peak memory of the real command alone, in a fresh process (this one holds all three figures' state).
    cmd = [sys.executable, "-m", "dpsims_aug", "generate", "--labels", str(tmp / "labels"), "--n", str(args.n),
           "--out", str(tmp / "out_rss"), "--checkpoint", str(ckpt), "--batch-size", str(args.batch_size),
           "--device", args.device, "--dtype", args.dtype, "--no-progress"]
    subprocess.run(cmd, check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


def _result(
    args: argparse.Namespace,
    argv: list[str] | None,
    device: torch.device,
    total: int,
    times: dict[str, list[float]],
    cpu_times: dict[str, list[float]],
    peak_rss_gib: float,
    load_start: list[float],
) -> dict:
    """The results record: best-of-runs images/s per figure, every run, the settings and the machine."""
    ips = {k: round(total / min(v), 2) for k, v in times.items()}
    return {
        "benchmark": "dpsims-aug generate end to end vs Synthesizer vs bare generator forward",
        "preset": args.preset,
        "size_hw": list(args.size),
        "label_maps": args.maps,
        "images": total,
        "batch_size": args.batch_size,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "dtype": args.dtype,
        "torch_threads": torch.get_num_threads(),
        "images_per_s": ips,
        "generate_over_forward": round(ips["generate"] / ips["forward"], 3),
        "generate_peak_rss_gib": round(peak_rss_gib, 3),
        # Process CPU seconds (all threads): includes the writer/reader threads' work.
        "images_per_cpu_s": {k: round(total / min(v), 2) for k, v in cpu_times.items()},
        "runs_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "runs_cpu_s": {k: [round(x, 3) for x in v] for k, v in cpu_times.items()},
        "command": "python benchmarks/speed/bench_generate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(loadavg_start=load_start),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
