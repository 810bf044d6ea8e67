"""Training-step speed and peak memory of the DP-SIMS trainer on this machine.

Each case runs in its own process (so peak RSS is that case's alone): it builds the model of a shipped training
config (optionally with overrides), its optimizers, and times full ``train_step`` calls (D update + G update + EMA)
on a synthetic batch of the config's resolution. Timing does not depend on image content.

    python benchmarks/speed/bench_train.py            # all cases, results in work_dirs/benchmarks/train_speed.json
    python benchmarks/speed/bench_train.py --quick    # fewer steps, small case only, no results file

``--small`` writes ``train_speed_small.json`` instead; ``--update-results`` writes the committed file of that name in
``benchmarks/results/``, ``--out`` any path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import REPO, add_output_args, loadavg, machine_info, output_path, write_results  # noqa: E402  (benchmarks/common.py)

NAME, SMALL_NAME = "train_speed.json", "train_speed_small.json"

# name -> (config, batch, model overrides)
CASES = {
    # The config runs channels_last; the first case is the NCHW reference the others are compared with.
    "embedded_small (small G, Lite0 D) 64x64": ("train_gan/configs/embedded_small.py", 8, {"channels_last": False}),
    "embedded_small, backbone channels_last": (
        "train_gan/configs/embedded_small.py", 8,
        {"channels_last": False, "discriminator": {"backbone_channels_last": True}},
    ),
    "embedded_small, G and D channels_last": ("train_gan/configs/embedded_small.py", 8, {"channels_last": True}),
    "ade20k preset, Lite0 D (offline) 256x256": (
        "train_gan/configs/ade20k.py", 1,
        {"discriminator": {"backbone": "tf_efficientnet_lite0", "weights": "offline"}},
    ),
    "ade20k preset, ConvNeXt-L D (paper) 256x256": (
        "train_gan/configs/ade20k.py", 1, {"discriminator": {"weights": None}},  # random weights: same cost
    ),
}


def run_case(config: str, batch: int, overrides: dict, steps: int) -> dict:
    """Time ``steps`` train steps (after one warm-up) in this process; returns seconds and peak RSS."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS

    import train_gan  # noqa: F401 - registries
    from train_gan.optim import PerModuleOptimWrapperConstructor

    cfg = Config.fromfile(REPO / config)
    model_cfg = cfg.model.to_dict()
    for key, value in overrides.items():
        model_cfg[key] = {**model_cfg.get(key, {}), **value} if isinstance(value, dict) else value
    model = MODELS.build(model_cfg)
    optim = PerModuleOptimWrapperConstructor({k: v for k, v in cfg.optim_wrapper.items() if k != "constructor"})(model)
    crop = cfg.train_dataloader.dataset.crop_size
    h, w = (crop, crop) if isinstance(crop, int) else crop
    gen = torch.Generator().manual_seed(0)
    data = {
        "image": torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, generator=gen),
        "label": torch.randint(0, model.label_space.num_classes, (batch, h, w), generator=gen),
    }
    model.train()
    model.train_step(data, optim)  # warm-up (allocations, oneDNN primitive caches)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_step(data, optim)
        times.append(time.perf_counter() - start)
    g_params = sum(p.numel() for p in model.generator.parameters())
    d_trainable = sum(p.numel() for p in model.discriminator.trainable_parameters())
    d_frozen = sum(p.numel() for p in model.discriminator.backbone.parameters())
    return {
        "config": config, "batch": batch, "size_hw": [h, w], "overrides": overrides,
        "seconds_per_iter_median": statistics.median(times), "seconds_per_iter_all": times,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "params_m": {"generator": g_params / 1e6, "discriminator_trainable": d_trainable / 1e6,
                     "discriminator_frozen_backbone": d_frozen / 1e6},
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 steps, small case only")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--small", action="store_true",
                        help="the embedded_small cases only, alternated --rounds times (same-run ratios against the "
                        "first); results in train_speed_small.json")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    add_output_args(parser, NAME)
    args = parser.parse_args(argv)
    steps = 2 if args.quick else args.steps
    if args.case:
        config, batch, overrides = CASES[args.case]
        print(json.dumps(run_case(config, batch, overrides, steps)))
        return

    names = list(CASES)[:1] if args.quick else list(CASES)
    small = [name for name in CASES if name.startswith("embedded_small")]
    if args.small:
        names = small * args.rounds
    rows = []
    load_start = loadavg()
    for name in names:
        cmd = [sys.executable, __file__, "--case", name, "--steps", str(steps)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True).stdout
        rows.append({"case": name, **json.loads(out.strip().splitlines()[-1])})
        print(f"done: {name}", flush=True)
    result = {
        "benchmark": "train_gan train_step (D update + G update + EMA), synthetic batch",
        "command": "python benchmarks/speed/bench_train.py" + (" --quick" if args.quick else "") + (
            f" --small --rounds {args.rounds} --steps {args.steps}" if args.small else ""),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(omp_num_threads=os.environ.get("OMP_NUM_THREADS"), loadavg_start=load_start),
        "rows": rows,
    }
    if args.small:
        medians = {n: statistics.median(r["seconds_per_iter_median"] for r in rows if r["case"] == n) for n in small}
        plain = medians[small[0]]
        result["speedup_vs_first"] = {n: round(plain / m, 3) for n, m in medians.items()}
        for name, m in medians.items():
            print(f"{name}: {m:.3f} s/iter (x{plain / m:.2f}; medians of {args.rounds} alternated rounds)")
        write_results(output_path(args, SMALL_NAME), result)
    elif not args.quick:
        write_results(output_path(args, NAME), result)
    header = ("case", "batch", "s/iter", "peak GiB", "G M", "D train M", "D frozen M")
    print("\n{:48s} {:>5s} {:>8s} {:>9s} {:>6s} {:>9s} {:>10s}".format(*header))
    for r in rows:
        p = r["params_m"]
        print(f"{r['case']:48s} {r['batch']:5d} {r['seconds_per_iter_median']:8.2f} {r['peak_rss_gib']:9.2f} "
              f"{p['generator']:6.1f} {p['discriminator_trainable']:9.2f} {p['discriminator_frozen_backbone']:10.1f}")


if __name__ == "__main__":
    main()
