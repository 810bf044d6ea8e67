"""The study's constants and the small helpers every stage shares."""

from __future__ import annotations

import argparse
from pathlib import Path

from common import REPO  # benchmarks/common.py

SCRIPT = Path(__file__).resolve().parents[1] / "bench_seg_gain.py"  # the command; ``--child RUN_DIR`` runs one run
EMBEDDED_GAN_CONFIG = REPO / "train_gan" / "configs" / "embedded_small.py"
GPU_DATASETS = {  # dataset -> (augment/ folder, train_gan config, dataset format)
    "ade20k": ("ade20k", "ade20k.py", "ade20k"),
    "coco_stuff": ("coco_stuff", "coco_stuff.py", "coco_stuff"),
    "cityscapes": ("cityscapes", "cityscapes.py", "cityscapes"),
}
SOURCE_DOMAIN = "source"  # the renderer's domain the bundled generator was trained on


def dataset_format(args: argparse.Namespace) -> str:
    """The on-disk folder format of the study's real data: the embedded scenes are written as ADE-20K."""
    return "ade20k" if args.dataset == "embedded" else GPU_DATASETS[args.dataset][2]


def study_root(args: argparse.Namespace) -> Path:
    """``<work dir>/L<labelled>[_V<val>_S<size>][_<domain>]``: the folder of one study's stages."""
    tag = f"L{args.labelled or 'all'}" + (f"_V{args.val}_S{args.size}" if args.dataset == "embedded" else "")
    tag += "" if args.domain == SOURCE_DOMAIN else f"_{args.domain}"
    return args.work_dir / tag


def gan_config_path(args: argparse.Namespace) -> Path:
    """The shipped train_gan config the study trains its GAN with."""
    if args.dataset == "embedded":
        return EMBEDDED_GAN_CONFIG
    return REPO / "train_gan" / "configs" / GPU_DATASETS[args.dataset][1]


def study_regime(args: argparse.Namespace) -> str:
    """Which situation of a user the study measures (see ``bench_seg_gain.py``'s docstring)."""
    fine_tuned = any(o.startswith("model.init_generator=") for o in args.gan_options)
    if not getattr(args, "uses_generator", True):
        return "no generator: real images (and the renderer's oracles) only"
    if args.gan_checkpoint is None and not fine_tuned:
        return "same data: the GAN trained on the labelled images only"
    how = "as is" if args.gan_checkpoint is not None else "fine-tuned on the labelled images"
    if args.domain != "source":
        return f"another domain: a generator trained on the {SOURCE_DOMAIN} domain, {how}, for {args.domain} images"
    return f"generator with more data (diagnostic): a generator trained on more scenes of the same domain, {how}"
