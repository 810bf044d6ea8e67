"""The trainer's ``dpsims-aug`` subcommands, ``train`` and ``export``, registered through the ``dpsims_aug.commands``
entry point group (setup.cfg): the toolkit finds them by name and never imports this package itself."""

from __future__ import annotations

import argparse
import sys


def _cmd_train(args: argparse.Namespace) -> int:
    from train_gan.train import main as train_main

    return train_main([args.config, *args.train_args])


def _cmd_export(args: argparse.Namespace) -> int:
    import torch

    from dpsims_aug.checkpoint import CheckpointError
    from train_gan.export import export_training_checkpoint

    try:
        result = export_training_checkpoint(args.checkpoint, args.out, dtype=torch.float16 if args.half else None)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Exported the EMA generator ({result.label_space.name}, {result.label_space.num_classes} classes) "
          f"to {args.out}")
    return 0


def add_train_command(sub) -> None:
    """``dpsims-aug train CONFIG [trainer options]`` (same as ``python -m train_gan.train``)."""
    p = sub.add_parser(
        "train",
        help="train DP-SIMS with mmengine's Runner (same as python -m train_gan.train)",
        description="Train DP-SIMS from an mmengine config (train_gan/configs/*.py). Options after CONFIG go to "
        "the trainer: --work-dir, --resume [CKPT], --data-root, --max-iters, --checkpoint-minutes, --amp, --launcher, "
        "--cfg-options.",
    )
    p.add_argument("config", help="training config")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="trainer options")
    p.set_defaults(func=_cmd_train)


def add_export_command(sub) -> None:
    """``dpsims-aug export CHECKPOINT --out FILE``: the single-file inference checkpoint of a training run."""
    p = sub.add_parser(
        "export",
        help="turn a training checkpoint into the single-file inference checkpoint (EMA generator)",
        description="Write the EMA generator, its config and LabelSpace from a training checkpoint (iter_N.pth) "
        "to one safetensors file that `generate` and DPSIMSAugment load.",
    )
    p.add_argument("checkpoint", help="training checkpoint (work_dir/iter_N.pth)")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--half", action="store_true", help="store the weights as float16 (half the file size)")
    p.set_defaults(func=_cmd_export)
