"""The ``dpsims-aug`` console script.

Each subcommand is a ``_cmd_<name>(args)`` function registered in :func:`build_parser`; heavy imports happen
inside them so ``dpsims-aug --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _size(text: str) -> tuple[int, int]:
    """Parse ``128`` or ``256x128`` (width x height) into (height, width)."""
    try:
        if "x" in text:
            w, h = (int(v) for v in text.lower().split("x"))
        else:
            w = h = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must be N or WxH, got {text!r}") from err
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def _cmd_dataset(args: argparse.Namespace) -> int:
    from dpsims_aug.data.writers import LAYOUTS, write_dataset

    if args.layout not in LAYOUTS:
        print(f"error: unknown layout {args.layout!r}; choose from {sorted(LAYOUTS)}", file=sys.stderr)
        return 2
    summary = write_dataset(
        args.out, layout=args.layout, n_train=args.train, n_val=args.val, size=args.size, seed=args.seed
    )
    print(f"Wrote the embedded scene dataset ({args.layout} layout) to {args.out}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="dpsims-aug",
        description="DP-SIMS semantic image synthesis as a data-augmentation toolkit for mmsegmentation.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "dataset",
        help="write the embedded procedural scene dataset (ADE-20K, Cityscapes, folder or HF layout)",
        description="Write the deterministic embedded scene dataset in a chosen on-disk layout.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--layout", default="ade20k", help="ade20k | cityscapes | folder | hf (default: ade20k)")
    p.add_argument("--train", type=int, default=200, help="training images (default: 200)")
    p.add_argument("--val", type=int, default=50, help="validation images (default: 50)")
    p.add_argument("--size", type=_size, default=(128, 128), help="N or WxH (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    p.set_defaults(func=_cmd_dataset)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dpsims-aug`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
