"""Fidelity of a generator on the embedded dataset: FID, mIoU of its images under a real-trained segmenter, diversity.

    python benchmarks/bench_fidelity.py                       # the bundled model -> work_dirs/benchmarks/fidelity.json
    python benchmarks/bench_fidelity.py --update-results      # -> benchmarks/results/fidelity.json
    python benchmarks/bench_fidelity.py --checkpoint G.safetensors --out my_fidelity.json

The committed result, of the previous bundle, is archived: benchmarks/results/archive/fidelity.json (superseded by
benchmarks/results/bundled_fidelity.json, from ``dpsims-aug evaluate``; docs/benchmarks.md).

Stages (each skipped when its output exists, so a re-run only evaluates):
1. the embedded dataset, ADE-20K format, 1000 train / 100 val label maps at 64x64 (what the bundled model trained on);
2. a Fast-SCNN segmenter trained on the *real* training images only (augment/embedded/fastscnn_embedded_real.py,
   2000 iterations, ~3 minutes on this CPU);
3. ``dpsims-aug evaluate`` on the validation split: 3 seeds per label map; FID against the real validation images,
   the segmenter's mIoU on the generated images as a fraction of its mIoU on the real ones (target >= 80%), and
   diversity across seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import REPO, add_output_args, machine_info, output_path, write_results  # benchmarks/common.py

SEGMENTER_CONFIG = REPO / "augment" / "embedded" / "fastscnn_embedded_real.py"
NAME = "fidelity.json"


def ensure_data(root: Path) -> None:
    from dpsims_aug.data.writers import write_dataset

    write_dataset(root, "ade20k", n_train=1000, n_val=100, size=(64, 64), seed=0)


def ensure_segmenter(data_root: Path, work_dir: Path) -> tuple[Path, Path]:
    """Train (once) the real-only segmenter; returns its config and checkpoint."""
    checkpoint = work_dir / "iter_2000.pth"
    config = work_dir / SEGMENTER_CONFIG.name
    if not checkpoint.is_file():
        from mmengine.config import Config
        from mmengine.runner import Runner

        cfg = Config.fromfile(SEGMENTER_CONFIG)
        cfg.work_dir = str(work_dir)
        for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
            cfg[loader].dataset.data_root = str(data_root)
        Runner.from_cfg(cfg).train()
    return config, checkpoint


def main(argv: list[str] | None = None) -> None:
    from dpsims_aug.metrics.evaluate import evaluate
    from dpsims_aug.synthesis import default_checkpoint_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="generator (default: the bundled model)")
    parser.add_argument("--work-dir", type=Path, default=REPO / "work_dirs" / "fidelity")
    parser.add_argument("--n-seeds", type=int, default=3)
    add_output_args(parser, NAME)
    args = parser.parse_args(argv)
    out = output_path(args, NAME)

    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path()
    data_root = args.work_dir / "data"
    start = time.perf_counter()
    ensure_data(data_root)
    config, segmenter = ensure_segmenter(data_root, args.work_dir / "segmenter")
    metrics_file = args.work_dir / "metrics.json"
    result = evaluate(
        checkpoint, data_root, split="val", n_seeds=args.n_seeds, segmenter_config=config,
        segmenter_checkpoint=segmenter, out=metrics_file, progress=False,
    )
    record = {
        "benchmark": "fidelity of a generator on the embedded dataset (validation split, 100 label maps)",
        "command": "python benchmarks/bench_fidelity.py",
        "checkpoint": checkpoint.name,
        "segmenter": "Fast-SCNN, random init, 2000 iterations on the 1000 real training images",
        "seconds": round(time.perf_counter() - start, 1),
        "machine": machine_info(),
        **result,
    }
    write_results(out, record)
    metrics = result["metrics"]
    print(f"\n{'metric':34s} value")
    for key, value in metrics.items():
        print(f"{key:34s} {value:.4f}" if isinstance(value, float) else f"{key:34s} {value}")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
