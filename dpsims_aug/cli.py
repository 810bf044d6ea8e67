"""The ``dpsims-aug`` console script.

Each subcommand is a ``_cmd_<name>(args)`` function registered in :func:`build_parser`; heavy imports happen
inside them so ``dpsims-aug --help`` stays instant. Other packages add subcommands through the ``dpsims_aug.commands``
entry point group: each entry is a function that takes the subparsers object and adds its parser (``train_gan``
adds ``train`` and ``export`` this way, so the toolkit never imports the trainer).
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from dpsims_aug.locking import OutputLockedError

COMMAND_GROUP = "dpsims_aug.commands"
# What an interrupted or failed run of each command leaves behind (every command writes atomically and resumes).
_KEPT = {
    "generate": "the images finished so far are kept (listed in the output folder's manifest); run the same command "
                "again to resume",
    "layouts": "the label maps written so far are kept; run the same command again to resume",
    "filter": "the annotations filtered so far are kept; run the same command again to resume",
    "dataset": "the scenes written so far are kept; run the same command again to resume",
    "seg-train": "the last checkpoint is kept; run the same command with --resume to continue",
    "evaluate": "the FID reference cache and finished TSTR runs are kept; run the same command again to reuse them",
}


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


class _DeprecatedAlias(argparse.Action):
    """A hidden, deprecated spelling of an option (``help=argparse.SUPPRESS``): it stores into the new option's
    ``dest``, so old scripts keep working, and says on stderr which option to use instead."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, **kwargs) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _add_dataset_format(p: argparse.ArgumentParser, default: str, help_text: str) -> None:
    """``--dataset-format``: the on-disk folder format of a dataset (``args.dataset_format``). ``--layout``, its
    name before the rename, is still accepted but not shown (it meant the folder format, not a label map's layout as
    in ``dpsims-aug layouts``)."""
    p.add_argument("--dataset-format", default=default, metavar="FORMAT", help=help_text)
    p.add_argument("--layout", dest="dataset_format", action=_DeprecatedAlias, new="--dataset-format",
                   default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _cmd_dataset(args: argparse.Namespace) -> int:
    from dpsims_aug.data.writers import WRITABLE_FORMATS, write_dataset

    if args.dataset_format not in WRITABLE_FORMATS:
        print(f"error: unknown dataset format {args.dataset_format!r}; choose from {sorted(WRITABLE_FORMATS)}",
              file=sys.stderr)
        return 2
    from dpsims_aug.data.scenes import DOMAINS

    if args.domain not in DOMAINS:
        print(f"error: unknown domain {args.domain!r}; choose from {sorted(DOMAINS)}", file=sys.stderr)
        return 2
    summary = write_dataset(
        args.out, dataset_format=args.dataset_format, n_train=args.train, n_val=args.val, size=args.size,
        seed=args.seed, domain=args.domain,
    )
    print(f"Wrote the embedded scene dataset ({args.dataset_format} format, {args.domain} domain) to {args.out}")
    for key, value in summary.items():
        if key != "mmseg":  # the mmseg dataset dicts (long): from the function named below, not on the console
            print(f"  {key}: {value}")
    print(f"  mmseg: dpsims_aug.data.mmseg_configs.mmseg_dataset_config({str(args.out)!r}, {args.dataset_format!r}, "
          "split) gives its dataset dicts" + (f"; or dpsims-aug seg-train fastscnn_embedded_real --data-root {args.out}"
                                 if args.dataset_format == "ade20k" else ""))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from dpsims_aug.checkpoint import CheckpointError
    from dpsims_aug.labels import LabelMapError
    from dpsims_aug.pool.writer import GenerateError, generate

    try:
        summary = generate(
            labels=args.labels, n=args.n, out=args.out, checkpoint=args.checkpoint, dataset_format=args.dataset_format,
            split=args.split, train_ids=args.train_ids, hf=args.hf, hf_split=args.hf_split,
            hf_column=args.hf_column, hf_id_column=args.hf_id_column, batch_size=args.batch_size,
            **({} if args.max_batch_pixels is None else dict(max_batch_pixels=args.max_batch_pixels or None)),
            device=args.device, dtype=args.dtype, seed=args.seed, image_format=args.format, shard=args.shard,
            on_error=args.on_error, dry_run=args.dry_run, grid=args.grid, hf_out=args.hf_out,
            workers=args.workers, progress=not args.no_progress, edges=args.edges, instance_dir=args.instances,
        )
    except (GenerateError, LabelMapError, CheckpointError, ModuleNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    shard = "" if summary.shard[1] == 1 else f" (shard {summary.shard[0]}/{summary.shard[1]})"
    to_make = summary.images_total - summary.already_done
    if summary.dry_run:
        print(f"dry run{shard}: {summary.label_maps} label maps, {summary.images_total} images in all, "
              f"{summary.already_done} already done, {to_make} to make; split: {', '.join(summary.splits)}; output "
              f"folder {summary.out}")
        return 0
    print(f"generated {summary.generated} images in {summary.seconds:.1f} s ({_rate(summary)})"
          f"{shard}; {summary.already_done} were already done; {summary.label_maps} label maps (split: "
          f"{', '.join(summary.splits)})")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} label map(s):")
        for name, problem in summary.skipped:
            print(f"  {name}: {problem.removeprefix(name + ': ')}")
    print(f"output folder: {summary.out}")
    print(f"manifest: {summary.manifest}")
    if summary.merged:
        print(f"mmseg dataset config: {summary.out / 'dataset_config.py'}")
    if summary.preview is not None:
        print(f"preview: {summary.preview}")
    if summary.hf_dataset is not None:
        print(f"HF dataset: {summary.hf_dataset}")
    return 0


def _segmenter_config(value: str | None) -> str | None:
    """A segmenter config given on the command line: a file, or a shipped config's name."""
    from dpsims_aug.config_names import find_config

    return None if value is None else str(find_config(value, "segmenter"))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from dpsims_aug.checkpoint import CheckpointError
    from dpsims_aug.labels import LabelMapError
    from dpsims_aug.metrics.evaluate import evaluate, format_table

    try:
        args.segmenter_config, args.tstr_config = map(_segmenter_config, (args.segmenter_config, args.tstr_config))
        result = evaluate(
            checkpoint=args.checkpoint, data=args.data, split=args.split, n_seeds=args.n_seeds,
            max_images=args.max_images, segmenter_config=args.segmenter_config,
            segmenter_checkpoint=args.segmenter_checkpoint, batch_size=args.batch_size, device=args.device,
            dtype=args.dtype, seed=args.seed, dataset_format=args.dataset_format, cache_dir=args.cache_dir,
            out=args.out,
            progress=not args.no_progress, tstr_config=args.tstr_config, tstr_iters=args.tstr_iters,
            tstr_maps=args.tstr_maps, tstr_work_dir=args.tstr_work_dir, edges=args.edges,
        )
    except (CheckpointError, LabelMapError, FileNotFoundError, ModuleNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.out:
        print(f"metrics: {args.out}")
    return 0


def _cmd_filter(args: argparse.Namespace) -> int:
    from dpsims_aug.pool.filter import FilterError, filter_pool

    try:
        args.seg_config = _segmenter_config(args.seg_config)
        summary = filter_pool(
            pool=args.pool, real=args.real, seg_config=args.seg_config, seg_checkpoint=args.seg_checkpoint,
            out=args.out, dataset_format=args.dataset_format, split=args.split,
            margin=None if args.no_pixel_filter else args.margin,
            resample=args.resample, device=args.device, batch_size=args.batch_size, progress=not args.no_progress,
        )
    except (FilterError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{summary.images_selected} of {summary.images_pool} pool images selected, {summary.filtered_now} "
          f"filtered now; {100 * summary.kept_fraction:.1f}% of their labelled pixels kept")
    print(f"output folder: {summary.out}")
    print(f"mmseg dataset config: {summary.dataset_config}")
    return 0


def _ids(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integer ids, got {text!r}") from err


def _cmd_layouts(args: argparse.Namespace) -> int:
    from dpsims_aug.labels import LabelMapError
    from dpsims_aug.layouts import LayoutAugment, write_layouts

    params = LayoutAugment(flip=not args.no_flip, scale=(1.0, args.max_zoom), max_pastes=args.max_pastes,
                           paste_ids=args.paste_ids or None, ignore_ids=args.ignore_ids)
    try:
        summary = write_layouts(args.labels, args.k, args.out, dataset_format=args.dataset_format,
                                split=args.split, seed=args.seed, params=params, progress=not args.no_progress)
    except (LabelMapError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"output folder: {summary.out} (render images for it with: dpsims-aug generate --labels {summary.out} "
          "--dataset-format bare --n 1)")
    return 0


def _cmd_seg_train(args: argparse.Namespace) -> int:
    from dpsims_aug.mm.runner import SegmenterRunError, build_segmenter_config, format_metrics, train_segmenter

    try:
        cfg = build_segmenter_config(
            args.config, work_dir=args.work_dir, data_root=args.data_root, max_iters=args.max_iters, seed=args.seed,
            resume=args.resume, load_from=args.load_from, cfg_options=args.cfg_options, launcher=args.launcher)
        result = train_segmenter(cfg, verbose=args.verbose, validate=not args.no_validate)
    except (SegmenterRunError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"trained {result['iterations']} iterations; checkpoint: {result['checkpoint']}")
    if result["metrics"]:
        print(f"validation: {format_metrics(result['metrics'])}")
    print(f"log: {result['log']}")
    return 0


def _cmd_seg_test(args: argparse.Namespace) -> int:
    from dpsims_aug.mm.runner import SegmenterRunError, build_segmenter_config, format_metrics, test_segmenter

    try:
        cfg = build_segmenter_config(args.config, work_dir=args.work_dir, data_root=args.data_root,
                                     cfg_options=args.cfg_options, launcher=args.launcher)
        metrics = test_segmenter(cfg, args.checkpoint, verbose=args.verbose, out=args.out)
    except (SegmenterRunError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"test: {format_metrics(metrics)}")
    if args.out:
        print(f"metrics: {args.out}")
    return 0


def _cmd_configs(args: argparse.Namespace) -> int:
    from dpsims_aug.config_names import KINDS, ConfigNotFoundError, config_folder, find_config, list_configs

    if args.name is None:
        for kind in KINDS:
            shipped = list_configs(kind)
            width = max(map(len, shipped), default=0)
            print(f"{kind} configs ({config_folder(kind) or 'not installed'}):")
            for name, path in shipped.items():
                print(f"  {name:<{width}}  {path.relative_to(config_folder(kind))}")
        print("dpsims-aug train NAME trains a gan config, dpsims-aug seg-train NAME a segmenter config; "
              "dpsims-aug configs NAME --out FILE writes one out to edit.")
        return 0
    found = []
    for kind in KINDS:
        try:
            found.append(find_config(args.name, kind))
        except ConfigNotFoundError as err:
            error = err
    if not found:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = found[0]
    if args.out is None:
        print(path)
        return 0
    from mmengine.config import Config

    from dpsims_aug.fileio import atomic_write_text

    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists (--force overwrites it)", file=sys.stderr)
        return 2
    # Resolved: the _base_ chain merged into one file, so the copy stands alone wherever it is written.
    text = Config.fromfile(str(path)).pretty_text
    atomic_write_text(out, f"# {path.name}, written by `dpsims-aug configs {args.name} --out {args.out}`; edit "
                      "freely.\n" + text + "\n")
    print(f"wrote {out} (from {path})")
    return 0


def _add_runner_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work-dir", help="logs and checkpoints (default: work_dirs/<config name>)")
    p.add_argument("--data-root", metavar="DIR",
                   help="every data_root of the config becomes DIR (the offline pool: DIR_dpsims); same as "
                   "--cfg-options data_root=DIR")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config entries, e.g. train_dataloader.batch_size=4")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                   help="multi-GPU: torchrun --nproc_per_node=N -m dpsims_aug seg-train ... --launcher pytorch")
    p.add_argument("--verbose", action="store_true",
                   help="print mmengine's full log (config dump, every logging interval) on the console too; it "
                   "always goes to the log file")


def _rate(summary) -> str:
    """Images per second, or seconds per image when under one a second (a full-resolution map on a CPU)."""
    rate = summary.images_per_second
    if rate >= 1 or not summary.generated:
        return f"{rate:.1f} img/s"
    return f"{summary.seconds / summary.generated:.1f} s/img"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="dpsims-aug",
        description="DP-SIMS semantic image synthesis as a data-augmentation toolkit for mmsegmentation.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "dataset",
        help="write the embedded procedural scene dataset (ADE-20K, Cityscapes, folder or HF format)",
        description="Write the deterministic embedded scene dataset in a chosen dataset format (on-disk folder "
        "structure).",
    )
    p.add_argument("--out", required=True, help="output folder")
    _add_dataset_format(p, "ade20k", "on-disk folder format: ade20k | cityscapes | folder | hf (default: ade20k)")
    p.add_argument("--train", type=int, default=200, help="training images (default: 200)")
    p.add_argument("--val", type=int, default=50, help="validation images (default: 50)")
    p.add_argument("--size", type=_size, default=(128, 128), help="N or WxH (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    p.add_argument("--domain", default="source",
                   help="the world the scenes are drawn from: source (default; the bundled model's), or a target "
                   "domain with other class frequencies and appearance (arid, snow), for domain-shift studies")
    p.set_defaults(func=_cmd_dataset)

    p = sub.add_parser(
        "generate",
        help="write N synthetic images per label map (mmseg-ready folder, resumable, shardable)",
        description="Synthesize N images per label map with a DP-SIMS generator into an mmseg-ready folder "
        "(images/, annotations/, manifest.jsonl, dataset_config.py). Re-running resumes; --shard i/N or torchrun "
        "split the work across processes.",
    )
    p.add_argument("--labels", help="dataset root or folder of label maps (default: the bundled sample label maps)")
    p.add_argument("--n", type=int, default=4, help="images per label map (default: 4)")
    p.add_argument("--out", help="output folder (default: <labels>_dpsims next to --labels)")
    p.add_argument("--checkpoint", help="generator checkpoint (default: the bundled embedded_small model)")
    _add_dataset_format(p, "auto", "on-disk folder format of --labels: auto (default: detected) | ade20k | "
                        "cityscapes | coco_stuff | folder | bare (a folder of label maps only)")
    p.add_argument("--split", default="train",
                   help="the split whose label maps are read: train (default), val, test (or the dataset format's "
                   "own names, e.g. training), or all; honoured whatever folder --labels names (dataset root, "
                   "annotations folder, split folder, split lists). Only a train pool may be used for training")
    p.add_argument("--train-ids", action="store_true", help="Cityscapes: read *_labelTrainIds.png")
    p.add_argument("--edges", default="instances", choices=("instances", "from-labels"),
                   help="generators trained with instance edges: read each label map's instance map (instances, "
                   "default: Cityscapes *_gtFine_instanceIds.png, COCO panoptic PNGs, an instances/ folder; maps "
                   "without one are refused) or use the label map's class boundaries (from-labels)")
    p.add_argument("--instances", metavar="DIR",
                   help="folder of instance maps (looked at before the naming conventions), e.g. COCO's panoptic "
                   "PNGs")
    p.add_argument("--hf", help="read label maps from a HF dataset (save_to_disk folder or hub name)")
    p.add_argument("--hf-split", default="train", help="HF split (default: train)")
    p.add_argument("--hf-column", default="label", help="HF label-map column (default: label)")
    p.add_argument("--hf-id-column", help="HF column with a unique id per row (default: the row index)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="images per forward (default: 8; fewer for big maps, see --max-batch-pixels)")
    p.add_argument("--max-batch-pixels", type=int, default=None,
                   help="at most this many label-map pixels per forward, so a big map runs with fewer images "
                   "(default: 2097152, 8 images of 512x512: a 2048x1024 map runs alone); 0: no limit")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"), help="precision (default: fp32)")
    p.add_argument("--seed", type=int, default=0, help="global seed (default: 0)")
    p.add_argument("--format", default="jpg", choices=("jpg", "png"), help="image format (default: jpg)")
    p.add_argument("--shard", help="i/N: make only shard i of N (default: from torchrun's RANK/WORLD_SIZE)")
    p.add_argument("--on-error", default="stop", choices=("stop", "skip"),
                   help="bad label maps: refuse the run (stop, default) or skip them")
    p.add_argument("--dry-run", action="store_true", help="only report what would be done")
    p.add_argument("--grid", action="store_true", help="write preview.png (label map | samples)")
    p.add_argument("--hf-out", action="store_true", help="also write a HF dataset of the outputs to <out>/hf")
    p.add_argument("--workers", type=int, default=2, help="decoding and encoding threads (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser(
        "layouts",
        help="new label maps from the dataset's own (flip, zoom, class-aware copy-paste) to render images for",
        description="Write K new label maps per label map: horizontal flip, a random zoom window, and connected "
        "regions (objects) of other maps of the dataset pasted at the same height with a random horizontal "
        "shift. Render images for them with `dpsims-aug generate --labels OUT --dataset-format bare`. Re-running "
        "resumes.",
    )
    p.add_argument("--labels", required=True, help="dataset root or folder of label maps")
    p.add_argument("--k", type=int, default=4, help="new label maps per label map (default: 4)")
    p.add_argument("--out", required=True, help="output folder of label maps")
    _add_dataset_format(p, "auto", "on-disk folder format of --labels: auto (default: detected) | ade20k | "
                        "cityscapes | coco_stuff | folder | bare")
    p.add_argument("--split", default="train",
                   help="the split whose label maps are read: train (default), val, test or all (as in generate)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--max-zoom", type=float, default=1.5, help="largest zoom factor, 1 = none (default: 1.5)")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    p.add_argument("--max-pastes", type=int, default=3, help="objects pasted per new map at most (default: 3)")
    p.add_argument("--paste-ids", type=_ids, help="raw ids that may be pasted, e.g. 7,8,9 (default: any)")
    p.add_argument("--ignore-ids", type=_ids, default=(0, 255), help="raw ids never pasted (default: 0,255)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_layouts)

    p = sub.add_parser(
        "filter",
        help="FreeMask recipe for a generated pool: drop implausible pixels, resample by hardness",
        description="With a segmenter trained on the real images: measure its mean pixel loss per class on the real "
        "training set, then mark every synthetic pixel of class c whose loss exceeds margin x that mean as "
        "unlabeled, in a filtered copy of the pool's annotations (the pool is not modified); with --resample "
        "keep 1 (easiest) to N (hardest) of the pool's N images per label map, ranked by the label map's mean "
        "class loss. Writes annotations/, samples.txt, dataset_config.py, filter.json. Re-running resumes.",
    )
    p.add_argument("--pool", required=True, help="folder written by `dpsims-aug generate`")
    p.add_argument("--real", required=True, help="root of the real training dataset the segmenter was trained on")
    p.add_argument("--seg-config", required=True, help="mmseg config of that segmenter")
    p.add_argument("--seg-checkpoint", required=True, help="its checkpoint (mmengine .pth)")
    p.add_argument("--out", help="output folder (default: <pool>_filtered)")
    _add_dataset_format(p, "auto", "on-disk folder format of --real: auto (default: detected) | ade20k | "
                        "cityscapes | coco_stuff | folder")
    p.add_argument("--split", default="train", help="split of --real (default: train)")
    p.add_argument("--margin", type=float, default=1.25, help="loss margin over the class mean (default: 1.25)")
    p.add_argument("--no-pixel-filter", action="store_true", help="keep every pixel (resampling only)")
    p.add_argument("--resample", action="store_true", help="hardness-aware number of images per label map")
    p.add_argument("--batch-size", type=int, default=16, help="images per segmenter call (default: 16)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_filter)

    p = sub.add_parser(
        "evaluate",
        help="FID/KID, colour statistics, TSTR, mIoU (with a segmenter) and diversity of a generator checkpoint",
        description="Synthesize --n-seeds images per label map of a split (seeds as in `generate`) and measure FID "
        "and KID against the split's real images (offline TF-Inception; reference statistics cached) with their "
        "real-vs-real floors, colour statistics against the real images of the same label maps, the mIoU of an "
        "mmseg segmenter trained on real images on generated vs real images, diversity across seeds, and with "
        "--tstr-config train-on-synthetic/test-on-real (a segmenter trained on generated images of training label "
        "maps, tested on the split's real images, as a fraction of the same segmenter trained on the real images).",
    )
    p.add_argument("--checkpoint", required=True, help="generator checkpoint (.safetensors)")
    p.add_argument("--data", required=True, help="dataset root (ADE-20K, Cityscapes, COCO-Stuff or folder format)")
    p.add_argument("--split", default="val", help="split to evaluate on (default: val)")
    _add_dataset_format(p, "auto", "on-disk folder format of --data: auto (default: detected) | ade20k | "
                        "cityscapes | coco_stuff | folder")
    p.add_argument("--n-seeds", type=int, default=3, help="images per label map (default: 3)")
    p.add_argument("--max-images", type=int, help="use only the first N label maps (default: all)")
    p.add_argument("--segmenter-config", help="mmseg config of a segmenter trained on real images (enables mIoU)")
    p.add_argument("--segmenter-checkpoint", help="its checkpoint (mmengine .pth)")
    p.add_argument("--out", help="write the metrics as JSON here")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward (default: 8)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"), help="generator precision")
    p.add_argument("--seed", type=int, default=0, help="global seed (default: 0)")
    p.add_argument("--cache-dir", help="FID reference statistics cache (default: ~/.cache/dpsims-aug/fid)")
    p.add_argument("--edges", default="instances", choices=("instances", "from-labels"),
                   help="generators trained with instance edges: from each label map's instance map (default) or "
                   "the label map's class boundaries (as in generate)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--tstr-config", help="mmseg config of the TSTR segmenter (its train set a plain dataset with "
                   "data_root, e.g. augment/embedded/fastscnn_embedded_real.py); enables TSTR")
    p.add_argument("--tstr-iters", type=int, default=1000, help="TSTR segmenter iterations (default: 1000)")
    p.add_argument("--tstr-maps", type=int, default=128, help="training label maps used by TSTR (default: 128)")
    p.add_argument("--tstr-work-dir", help="TSTR runs (default: work_dirs/tstr); the real reference is reused")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "seg-train",
        help="train an mmseg segmenter from a config (a path or a shipped name; no mmseg tools/ needed)",
        description="Train an mmseg segmenter with mmengine's Runner, then validate the final weights. CONFIG is a "
        "file or the name of a shipped config (`dpsims-aug configs` lists them), e.g. fastscnn_embedded_pool "
        "(real + the offline pool), fastscnn_embedded_real (real only), segformer_mit-b0_ade20k-512x512_online.",
    )
    p.add_argument("config", help="mmseg config file or shipped config name")
    _add_runner_options(p)
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help="resume from the latest checkpoint in the work dir (no value) or from CKPT")
    p.add_argument("--load-from", metavar="CKPT", help="start from these weights (no optimizer state)")
    p.add_argument("--max-iters", type=int, help="train this many iterations; the LR schedule is rescaled to it")
    p.add_argument("--seed", type=int, help="randomness.seed (default: the config's)")
    p.add_argument("--no-validate", action="store_true",
                   help="no validation (neither the config's during training nor the final one)")
    p.set_defaults(func=_cmd_seg_train)

    p = sub.add_parser(
        "seg-test",
        help="evaluate a trained segmenter (mIoU) with its config's test set",
        description="Evaluate CHECKPOINT with CONFIG's test dataloader (mmseg IoUMetric); prints mIoU, mAcc, aAcc "
        "(the per-class table goes to the log).",
    )
    p.add_argument("config", help="mmseg config file or shipped config name")
    p.add_argument("checkpoint", help="segmenter checkpoint (work_dir/iter_N.pth)")
    _add_runner_options(p)
    p.add_argument("--out", help="also write the metrics as JSON here")
    p.set_defaults(func=_cmd_seg_test)

    p = sub.add_parser(
        "configs",
        help="list the shipped GAN and segmenter configs, or write one out to edit",
        description="Without NAME: list the shipped configs by name. With NAME: print its path, or with --out "
        "write it, resolved into one standalone file, to edit and pass to train / seg-train.",
    )
    p.add_argument("name", nargs="?", help="a shipped config's name (e.g. embedded_small, fastscnn_embedded_pool)")
    p.add_argument("--out", help="write the resolved config here")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=_cmd_configs)

    # Subcommands of other packages of the distribution (train_gan's `train` and `export`), found through an entry
    # point group so that the toolkit never imports the trainer.
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        entry.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dpsims-aug`` console script."""
    args = build_parser().parse_args(argv)
    kept = _KEPT.get(args.command, "every file written so far is whole")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"\ninterrupted (Ctrl-C): {kept}", file=sys.stderr)
        return 130
    except OutputLockedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing in {Path(err.filename).parent}" if err.filename else ""
        print(f"error: the disk is full{where} ({err.strerror}); {kept} once space is freed", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
