"""Train DP-SIMS: ``python -m train_gan.train CONFIG`` (also ``dpsims-aug train CONFIG``).

Multi-GPU on one node: ``torchrun --nproc_per_node=N -m train_gan.train CONFIG --launcher pytorch``; Slurm:
``srun ... python -m train_gan.train CONFIG --launcher slurm``. On CPU the process group uses gloo.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from dpsims_aug.mm.checkpoints import allow_mmengine_checkpoints
from dpsims_aug.mm.runner import build_runner as build_quiet_runner
from dpsims_aug.mm.runner import close_progress, console_to_log, latest_checkpoint, log_file
from train_gan.hooks import BackboneMismatchError


class ConfigError(ValueError):
    """The run cannot start from this config and these options; the message says why, in one line."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train_gan", description="Train the DP-SIMS GAN with mmengine's Runner.")
    parser.add_argument("config", help="mmengine config file (train_gan/configs/*.py)")
    parser.add_argument("--work-dir", help="where logs, checkpoints, sample grids and the export go")
    parser.add_argument(
        "--resume", nargs="?", const="auto", default=None,
        help="resume from the latest checkpoint in the work dir (no value) or from the given checkpoint",
    )
    parser.add_argument(
        "--data-root", metavar="DIR",
        help="train on the dataset in DIR: every data_root of the config (training data, held-out hooks' "
        "datasets) becomes DIR (same as --cfg-options data_root=DIR)",
    )
    parser.add_argument(
        "--label-space", metavar="NAME_OR_JSON",
        help="the classes: a preset name (ade20k, coco_stuff182, cityscapes, embedded, ...) or a label-space JSON "
        "file; every label_space of the config (model, datasets, hooks) becomes it (same as --cfg-options "
        "label_space=...)",
    )
    parser.add_argument("--max-iters", type=int, help="override train_cfg.max_iters")
    parser.add_argument(
        "--checkpoint-minutes", type=float, metavar="M",
        help="also save a checkpoint whenever M minutes have passed since the last one (default: the config's "
        "default_hooks.checkpoint.minutes, 30 in the shipped configs)",
    )
    parser.add_argument("--amp", action="store_true", help="mixed precision (AmpOptimWrapper; CUDA)")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument(
        "--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
        help="override config entries, e.g. train_dataloader.batch_size=4",
    )
    parser.add_argument("--verbose", action="store_true",
                        help="print mmengine's full log (config dump, every logging interval) on the console too; it "
                        "always goes to the log file")
    return parser.parse_args(argv)


def load_config(path: str):
    """``Config.fromfile``, with a missing or broken file reported as a :class:`ConfigError` naming it."""
    from mmengine.config import Config

    from dpsims_aug.config_names import ConfigNotFoundError, find_config

    try:
        path = str(find_config(path, "gan"))  # a file, or a shipped config's name (embedded_small, ade20k, ...)
    except ConfigNotFoundError as err:
        raise ConfigError(str(err)) from None
    try:
        return Config.fromfile(path)
    except Exception as err:  # noqa: BLE001 - syntax errors, missing _base_ files, failed imports, ...
        first_line = next((line for line in str(err).splitlines() if line.strip()), "")
        raise ConfigError(f"config {path} cannot be loaded: {type(err).__name__}: {first_line[:300]}") from err


def build_config(args: argparse.Namespace):
    """The mmengine Config of a run: the file, then the command-line overrides.

    Raises:
        ConfigError: the config file is missing or broken, or the data root cannot be applied.
    """
    from mmengine.config import DictAction

    from dpsims_aug.config_root import set_data_root, set_label_space

    cfg = load_config(args.config)
    options = argparse.Namespace(options={})
    if args.cfg_options:
        DictAction(option_strings=[], dest="options")(None, options, args.cfg_options)
    # The file's `data_root` was already copied into every dataset when it was executed, so merging a new top-level
    # value would change nothing they read: `data_root` is taken out of the options and applied by set_data_root,
    # which rewrites every data_root entry of the config (the same function serves the segmenter configs). It
    # runs before the merge, so an explicit nested key (train_dataloader.dataset.data_root=...) still wins.
    data_root = options.options.pop("data_root", None)
    data_root = args.data_root or data_root
    if data_root is not None:
        if not Path(data_root).is_dir():
            raise ConfigError(f"data root {data_root} is not a folder")
        try:
            set_data_root(cfg, data_root)
        except ValueError as err:
            raise ConfigError(f"{args.config}: cannot set the data root: {err}") from err
    label_space = args.label_space or options.options.pop("label_space", None)
    if label_space is not None:
        from dpsims_aug.labels import get_label_space

        try:
            get_label_space(label_space)  # a bad preset name or file fails here, by name, not inside the Runner
            set_label_space(cfg, label_space)
        except (ValueError, KeyError, TypeError, OSError) as err:
            raise ConfigError(f"label space {label_space}: {type(err).__name__}: {err}") from None
    cfg.merge_from_dict(options.options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or default_work_dir(args.config, cfg)
    if args.max_iters is not None:
        cfg.train_cfg.max_iters = args.max_iters
    if args.checkpoint_minutes is not None:
        if args.checkpoint_minutes < 0:
            raise ConfigError(f"--checkpoint-minutes must be >= 0, got {args.checkpoint_minutes:g}")
        # TimedCheckpointHook takes every CheckpointHook argument, so a config's own CheckpointHook can be swapped.
        cfg.default_hooks.checkpoint.update(type="TimedCheckpointHook", minutes=args.checkpoint_minutes)
    if args.amp:
        for name in ("generator", "discriminator"):
            cfg.optim_wrapper[name]["type"] = "AmpOptimWrapper"
    if not torch.cuda.is_available():
        cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    wire_instance_edges(cfg)
    wire_image_size(cfg)
    return cfg


def wire_image_size(cfg) -> None:
    """The generator's ``image_size`` (the resolution it is trained at, stored in its exports) follows the training
    crop unless ``model.generator.image_size`` is set: the preset's nominal size says nothing about this run, and
    the size-aware consumers (``DPSIMSAugment``'s 'resize' policy, ``DPSIMSDataPreprocessor``) render at it."""
    dataset = cfg.get("train_dataloader", {}).get("dataset") or {}
    crop = dataset.get("crop_size")
    generator = cfg.get("model", {}).get("generator")
    if crop is None or generator is None or "image_size" in generator:
        return
    generator["image_size"] = (crop, crop) if isinstance(crop, int) else tuple(crop)


def uses_instance_edges(cfg) -> bool:
    """Whether the config's generator takes instance edges (its preset's ``use_instance_edges``, or the
    override in ``model.generator``)."""
    from dpsims_aug.models import GENERATOR_PRESETS

    generator = dict(cfg.get("model", {}).get("generator") or {})
    preset = GENERATOR_PRESETS.get(generator.get("preset", "small"), {})
    return bool(generator.get("use_instance_edges", preset.get("use_instance_edges", False)))


def wire_instance_edges(cfg) -> None:
    """The training dataset yields instance edges exactly when the generator takes them: ``instance_edges`` of a
    ``SegPairDataset`` follows the model (so ``--cfg-options model.generator.use_instance_edges=False`` is the one
    switch). The held-out hooks derive their datasets from this one and follow too."""
    dataset = cfg.get("train_dataloader", {}).get("dataset")
    if dataset is not None and dataset.get("type") == "SegPairDataset":
        dataset["instance_edges"] = uses_instance_edges(cfg)


def check_instance_maps(cfg) -> None:
    """With instance edges, refuse in one line (before the Runner) a training set, or the held-out set of a sample
    grid or evaluation hook, with a label map that has no instance map, naming the first and the path looked for."""
    dataset = cfg.get("train_dataloader", {}).get("dataset", {})
    if dataset.get("type") != "SegPairDataset" or not dataset.get("instance_edges"):
        return
    from types import SimpleNamespace

    from dpsims_aug.labels import LabelMapError
    from train_gan.data import SegPairDataset
    from train_gan.hooks import held_out_dataset

    datasets = [dataset]
    for hook in cfg.get("custom_hooks", []):
        if hook.get("type") in ("SampleGridHook", "GANEvaluationHook"):
            datasets.append(held_out_dataset(SimpleNamespace(cfg=cfg), hook.get("dataset")))
    checked = []
    for options in datasets:
        options = {k: v for k, v in options.items() if k != "type"} if options.get("type") == "SegPairDataset" else None
        if options is None or options in checked:
            continue
        checked.append(options)
        try:
            SegPairDataset(**options)
        except LabelMapError as err:
            raise ConfigError(str(err)) from None


def default_work_dir(config: str, cfg) -> str:
    """``work_dirs/<config name>``; a fine-tuning run (``model.init_generator``) gets its own,
    ``work_dirs/<config name>_from_<generator name>``, so that a later ``--resume`` of either run finds its own."""
    name = Path(config).stem
    init = cfg.get("model", {}).get("init_generator")
    if init:
        name += f"_from_{Path(str(init)).stem}"
    return str(Path("work_dirs") / name)


def _is_main_process() -> bool:
    # Before and after the process group exists: torchrun and Slurm name the rank in the environment.
    return os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) == "0"


def check_resume_checkpoint(cfg) -> None:
    """Fail early, naming the file, if the checkpoint a resume would load is unreadable; say so (and start from
    iteration 0) when ``--resume`` finds no checkpoint in the work dir."""
    if not cfg.get("resume"):
        return
    path = cfg.get("load_from")
    if path is None:
        path = latest_checkpoint(cfg.work_dir)
        if path is None:
            # Without this mmengine logs "Auto resumed from the latest checkpoint None." and starts over.
            if _is_main_process():
                print(f"no checkpoint found in {cfg.work_dir}; starting from iteration 0", file=sys.stderr)
            cfg.resume = False
            return
        cfg.load_from = path  # resume exactly the file checked here
    elif not Path(path).is_file():
        raise SystemExit(f"error: cannot resume from {path}: no such file")
    allow_mmengine_checkpoints()
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means the file cannot be resumed from
        raise SystemExit(
            f"error: cannot resume from {path}: the checkpoint is unreadable or truncated ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). Delete it (and fix {Path(cfg.work_dir) / 'last_checkpoint'}) "
            "to resume from the previous one."
        ) from None


def check_data_root(cfg) -> None:
    """Refuse, in one line, a training dataset whose folder does not exist (rather than a traceback from inside
    the Runner), and say how to point the config at a dataset."""
    root = cfg.get("train_dataloader", {}).get("dataset", {}).get("data_root")
    if isinstance(root, str) and not Path(root).is_dir():
        raise ConfigError(f"the training data {root} (train_dataloader.dataset.data_root) is not a folder: write "
                          "the dataset there, or point the config at yours with --data-root DIR")


def build_runner(cfg, verbose: bool = True):
    """The mmengine Runner of a config, with the CPU-only distributed case handled.

    mmengine's ``init_dist`` for the ``pytorch`` launcher always calls ``torch.cuda.set_device`` and its DDP wrapper
    always gets ``device_ids``; without CUDA we create the gloo process group ourselves (from torchrun's
    environment) and drop the device ids, and mmengine then runs DDP on the CPU.
    """
    import train_gan  # noqa: F401 - registers the model, dataset, sampler, hooks and optimizer constructor
    import train_gan.checkpointing  # noqa: F401 - TimedCheckpointHook, for configs that do not import it

    if cfg.get("launcher", "none") == "pytorch" and not torch.cuda.is_available():
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="gloo")
        # mmengine passes device_ids=[LOCAL_RANK] to DDP, which CPU modules must not get.
        cfg.setdefault("model_wrapper_cfg", {})["device_ids"] = None
    return build_quiet_runner(cfg, verbose)


def resume_command(args: argparse.Namespace, work_dir: str) -> str:
    """The ``dpsims-aug train`` command line that continues this run from its last checkpoint."""
    words = ["dpsims-aug", "train", args.config, "--work-dir", work_dir]
    if args.data_root:
        words += ["--data-root", args.data_root]
    if args.max_iters is not None:
        words += ["--max-iters", str(args.max_iters)]
    if args.checkpoint_minutes is not None:
        words += ["--checkpoint-minutes", f"{args.checkpoint_minutes:g}"]
    if args.amp:
        words.append("--amp")
    if args.launcher != "none":
        words += ["--launcher", args.launcher]
    if args.cfg_options:
        words += ["--cfg-options", *args.cfg_options]
    return shlex.join([*words, "--resume"])


def interrupted_message(args: argparse.Namespace, cfg, runner) -> str:
    """One line: where the run stopped, which checkpoint is kept and how to continue from it."""
    from mmengine.runner import BaseLoop

    # Iterations completed. Not runner.iter: before the loop exists, that would build it (and its dataloader).
    loop = getattr(runner, "_train_loop", None)
    done = loop.iter if isinstance(loop, BaseLoop) else 0
    work_dir = str(cfg.work_dir) if cfg is not None else None
    kept = latest_checkpoint(work_dir) if work_dir else None
    if kept is None:
        return f"interrupted at iteration {done}, before the first checkpoint: nothing is kept"
    return f"interrupted at iteration {done}; the last checkpoint {kept} is kept; resume with: " + resume_command(
        args, work_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Train; returns the exit code (2: unusable config or options, 130: interrupted with Ctrl-C)."""
    args = parse_args(argv)
    cfg = runner = None
    try:
        cfg = build_config(args)
        check_data_root(cfg)
        check_instance_maps(cfg)
        check_resume_checkpoint(cfg)
        runner = build_runner(cfg, verbose=args.verbose)
        if not args.verbose and _is_main_process():
            print(f"training {Path(args.config).stem} for {cfg.train_cfg.max_iters} iterations in {cfg.work_dir} "
                  f"(log: {log_file(runner)})", file=sys.stderr)
            model = runner.model.module if hasattr(runner.model, "module") else runner.model
            if getattr(model, "init_summary", None):  # logged while the Runner was built: repeat it here
                print(model.init_summary, file=sys.stderr)
        with console_to_log(runner, args.verbose):
            runner.train()
        if _is_main_process():
            last = latest_checkpoint(cfg.work_dir)
            exported = Path(cfg.work_dir) / "generator_ema.safetensors"
            use = (f"generator: {exported} (dpsims-aug generate --checkpoint {exported} ...)" if exported.is_file()
                   else f"export the generator with: dpsims-aug export {last} --out {Path(cfg.work_dir).name}"
                   ".safetensors --half")
            print(f"trained {runner.iter} iterations; checkpoint: {last}\n{use}", file=sys.stderr)
    except (ConfigError, BackboneMismatchError) as err:
        if isinstance(err, BackboneMismatchError) and _is_main_process():
            close_progress(runner)
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # No checkpoint is written here: the interrupt may fall between the D and the G update of a step, and a
        # resume from such a state would not be exact. The time-based checkpoints bound what is lost.
        if _is_main_process():
            close_progress(runner)
            print(interrupted_message(args, cfg, runner), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
