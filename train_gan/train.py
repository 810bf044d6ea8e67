"""Train DP-SIMS: ``python -m train_gan.train CONFIG`` (also ``dpsims-aug train CONFIG``).

Multi-GPU on one node: ``torchrun --nproc_per_node=N -m train_gan.train CONFIG --launcher pytorch``; Slurm:
``srun ... python -m train_gan.train CONFIG --launcher slurm``. On CPU the process group uses gloo.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from dpsims_aug.mm.checkpoints import allow_mmengine_checkpoints


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train_gan", description="Train the DP-SIMS GAN with mmengine's Runner.")
    parser.add_argument("config", help="mmengine config file (train_gan/configs/*.py)")
    parser.add_argument("--work-dir", help="where logs, checkpoints, sample grids and the export go")
    parser.add_argument(
        "--resume", nargs="?", const="auto", default=None,
        help="resume from the latest checkpoint in the work dir (no value) or from the given checkpoint",
    )
    parser.add_argument("--max-iters", type=int, help="override train_cfg.max_iters")
    parser.add_argument("--amp", action="store_true", help="mixed precision (AmpOptimWrapper; CUDA)")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument(
        "--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
        help="override config entries, e.g. train_dataloader.batch_size=4",
    )
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace):
    """The mmengine Config of a run: the file, then the command-line overrides."""
    from mmengine.config import Config, DictAction

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        options = argparse.Namespace()
        DictAction(option_strings=[], dest="options")(None, options, args.cfg_options)
        cfg.merge_from_dict(options.options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or str(Path("work_dirs") / Path(args.config).stem)
    if args.max_iters is not None:
        cfg.train_cfg.max_iters = args.max_iters
    if args.amp:
        for name in ("generator", "discriminator"):
            cfg.optim_wrapper[name]["type"] = "AmpOptimWrapper"
    if not torch.cuda.is_available():
        cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def check_resume_checkpoint(cfg) -> None:
    """Fail early, naming the file, if the checkpoint a resume would load is unreadable."""
    from mmengine.runner import find_latest_checkpoint

    if not cfg.get("resume"):
        return
    path = cfg.get("load_from") or find_latest_checkpoint(cfg.work_dir)
    if path is not None and not cfg.get("load_from") and not Path(path).is_file():
        path = None  # a torn or stale pointer: fall back to the newest checkpoint on disk
    if path is None and not cfg.get("load_from"):
        # mmengine writes `last_checkpoint` with a plain open(): a run killed in that instant leaves it empty.
        found = sorted(Path(cfg.work_dir).glob("iter_*.pth"), key=lambda p: int(p.stem.split("_")[1]))
        if found:
            path = str(found[-1])
            cfg.load_from = path
    if path is None:
        return  # nothing to resume: mmengine starts from scratch
    allow_mmengine_checkpoints()
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means the file cannot be resumed from
        raise SystemExit(
            f"error: cannot resume from {path}: the checkpoint is unreadable or truncated ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). Delete it (and fix {Path(cfg.work_dir) / 'last_checkpoint'}) "
            "to resume from the previous one."
        ) from None


def build_runner(cfg):
    """The mmengine Runner of a config, with the CPU-only distributed case handled.

    mmengine's ``init_dist`` for the ``pytorch`` launcher always calls ``torch.cuda.set_device`` and its DDP wrapper
    always gets ``device_ids``; without CUDA we create the gloo process group ourselves (from torchrun's
    environment) and drop the device ids, and mmengine then runs DDP on the CPU.
    """
    from mmengine.runner import Runner

    import train_gan  # noqa: F401 - registers the model, dataset, sampler, hooks and optimizer constructor

    if cfg.get("launcher", "none") == "pytorch" and not torch.cuda.is_available():
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="gloo")
        # mmengine passes device_ids=[LOCAL_RANK] to DDP, which CPU modules must not get.
        cfg.setdefault("model_wrapper_cfg", {})["device_ids"] = None
    os.makedirs(cfg.work_dir, exist_ok=True)
    return Runner.from_cfg(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = build_config(parse_args(argv))
    check_resume_checkpoint(cfg)
    build_runner(cfg).train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
