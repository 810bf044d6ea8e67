"""Fidelity of a generator on the embedded dataset: FID, mIoU of its images under a real-trained segmenter, diversity.

    python benchmarks/bench_fidelity.py                       # the bundled model -> benchmarks/results/fidelity.json
    python benchmarks/bench_fidelity.py --checkpoint G.safetensors --out my_fidelity.json

Stages (each skipped when its output exists, so a re-run only evaluates):
1. the embedded dataset, ADE layout, 1000 train / 100 val label maps at 64x64 (what the bundled model trained on);
2. a Fast-SCNN segmenter trained on the *real* training images only (augment/embedded/fastscnn_embedded_real.py,
   2000 iterations, ~3 minutes on this CPU);
3. ``dpsims-aug evaluate`` on the validation split: 3 seeds per label map; FID against the real validation images,
   the segmenter's mIoU on the generated images as a fraction of its mIoU on the real ones (target >= 80%), and
   diversity across seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from common import REPO, repo_relative  # noqa: E402  (benchmarks/common.py, next to this script)

SEGMENTER_CONFIG = REPO / "augment" / "embedded" / "fastscnn_embedded_real.py"


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


def main() -> None:
    from dpsims_aug.metrics.evaluate import evaluate
    from dpsims_aug.synthesis import default_checkpoint_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="generator (default: the bundled model)")
    parser.add_argument("--work-dir", type=Path, default=REPO / "work_dirs" / "fidelity")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fidelity.json")
    parser.add_argument("--n-seeds", type=int, default=3)
    args = parser.parse_args()

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
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_end": os.getloadavg()[0]},
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(repo_relative(record), indent=1) + "\n")
    metrics = result["metrics"]
    print(f"\n{'metric':34s} value")
    for key, value in metrics.items():
        print(f"{key:34s} {value:.4f}" if isinstance(value, float) else f"{key:34s} {value}")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
