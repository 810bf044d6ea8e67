"""Training and testing an mmseg segmenter with mmengine's Runner: ``dpsims-aug seg-train`` and ``seg-test``.

So nobody needs mmseg's ``tools/`` folder (which a pip install does not have)::

    dpsims-aug seg-train fastscnn_embedded_pool --data-root work_dirs/data/embedded
    dpsims-aug seg-test fastscnn_embedded_pool work_dirs/fastscnn_embedded_pool/iter_2000.pth

The same pieces serve the toolkit's other Runner users (TSTR, the GAN trainer's command):

* :func:`build_runner` builds a Runner whose console shows a progress bar and a few summary lines; the config dump
  and the per-iteration log lines go to the run's log file only (everything, with ``verbose=True``, also to the
  console);
* :func:`rescale_schedule` shortens or lengthens a config's schedule, iteration-based LR schedulers included.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook

from dpsims_aug.fileio import atomic_write_text

__all__ = [
    "SUMMARY", "ProgressHook", "SegmenterRunError", "build_runner", "build_segmenter_config", "latest_checkpoint",
    "rescale_schedule", "test_segmenter", "train_segmenter",
]


# `runner.logger.info(message, extra=SUMMARY)`: a line that a quiet console shows too (evaluation results, exports).
SUMMARY = {"summary": True}


class SegmenterRunError(ValueError):
    """A segmenter run cannot start from this config and these options; the message says why, in one line."""


class ProgressHook(Hook):
    """A tqdm bar over the training iterations (with the latest loss) and one line per validation."""

    priority = "VERY_LOW"

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.bar = None
        self.last_val: tuple[int, dict] | None = None

    def before_train(self, runner) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=runner.max_iters, initial=runner.iter, unit="it", desc="train", file=self.stream,
                        dynamic_ncols=True, disable=not _is_main_process())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if runner.iter % 10 == 0 and isinstance(outputs, dict):
            # A segmenter logs `loss`; the GAN its terms (`loss_d`, `loss_g`, ...): show at most three.
            shown = {k: v for k, v in outputs.items() if k == "loss"} or \
                {k: v for k, v in outputs.items() if k.startswith("loss")}
            self.bar.set_postfix({k: f"{_number(v):.3f}" for k, v in list(shown.items())[:3]}, refresh=False)

    def after_train(self, runner) -> None:
        self.close()

    def close(self) -> None:
        """End the bar's line (also when training stops early, e.g. on Ctrl-C)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        self.last_val = (runner.iter, dict(metrics or {}))
        if _is_main_process() and metrics:
            line = f"iteration {runner.iter}: {format_metrics(metrics)}"
            (self.bar.write(line, file=self.stream) if self.bar is not None else print(line, file=self.stream))


def close_progress(runner) -> None:
    """Close the progress bar of a Runner from :func:`build_runner`, so that a following message starts its own
    line."""
    for hook in getattr(runner, "hooks", []) if runner is not None else []:
        if isinstance(hook, ProgressHook):
            hook.close()


def _number(value) -> float:
    return value.detach().float().mean().item() if hasattr(value, "detach") else float(value)


def _is_main_process() -> bool:
    return os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) == "0"


def format_metrics(metrics: dict) -> str:
    """``mIoU 51.93  mAcc 63.10  aAcc 80.02`` (the scalar metrics of an mmseg evaluation)."""
    scalars = _scalars(metrics)
    keys = [k for k in ("mIoU", "mAcc", "aAcc") if k in scalars] or sorted(scalars)
    return "  ".join(f"{k} {scalars[k]:.2f}" for k in keys)


def build_runner(cfg, verbose: bool = False):
    """``Runner.from_cfg(cfg)`` with a quiet console unless ``verbose``.

    mmengine's logger writes every record (the config dump of a few hundred lines, a line per logging interval,
    third-party warnings) to the console and to ``<work_dir>/<timestamp>/<timestamp>.log``. Quiet, its console
    stream is a null device and a :class:`ProgressHook` shows a bar and the validation results instead; the log
    file still gets everything.
    """
    from mmengine.runner import Runner

    os.makedirs(cfg.work_dir, exist_ok=True)
    if verbose:
        return Runner.from_cfg(cfg)
    # The logger's console handler binds sys.stdout when the Runner creates it: bind it to the null device.
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the logger that writes to it
    with contextlib.redirect_stdout(sink), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        runner = Runner.from_cfg(cfg)
    for warning in caught:  # to the log file (the logger's console is the null device now)
        runner.logger.warning(f"{warning.category.__name__}: {warning.message} ({warning.filename}:{warning.lineno})")

    def log_warning(message, category, filename, lineno, file=None, line=None):
        runner.logger.warning(f"{category.__name__}: {message} ({filename}:{lineno})")

    warnings.showwarning = log_warning  # later third-party warnings: the log file too
    summary = logging.StreamHandler(sys.stderr)
    summary.addFilter(lambda record: getattr(record, "summary", False))
    summary.setFormatter(logging.Formatter("%(message)s"))
    runner.logger.addHandler(summary)
    runner.register_hook(ProgressHook())
    return runner


class _LogWriter:
    """A text stream whose lines go to a logger (print() of third-party code during a quiet run: the log file)."""

    def __init__(self, logger) -> None:
        self.logger, self.buffer = logger, ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            if line.strip():
                self.logger.info(line)
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def console_to_log(runner, verbose: bool = False):
    """While the block runs, what is print()ed to stdout goes to the run's log file (unless ``verbose``)."""
    if verbose:
        yield
        return
    with contextlib.redirect_stdout(_LogWriter(runner.logger)):
        yield


def log_file(runner) -> str | None:
    """The Runner's log file (its console lines, config dump included)."""
    return next((h.baseFilename for h in runner.logger.handlers if hasattr(h, "baseFilename")), None)


def rescale_schedule(cfg, iters: int) -> None:
    """Set an iteration-based config's length to ``iters``, with its iteration-based LR schedulers (warmup, decay)
    stretched or shrunk by the same factor, so a shorter run follows the shipped schedule's shape."""
    shipped = cfg.train_cfg.max_iters
    scale = iters / shipped
    cfg.train_cfg.max_iters = iters
    schedulers = cfg.get("param_scheduler") or []
    schedulers = list(schedulers) if isinstance(schedulers, (list, tuple)) else [schedulers]
    for sched in schedulers:
        if sched.get("by_epoch", True) is False:
            begin = round(sched.get("begin", 0) * scale)
            sched.update(begin=begin, end=max(begin + 1, round(sched.get("end", shipped) * scale)))
    if schedulers:
        cfg.param_scheduler = schedulers
    if "val_interval" in cfg.train_cfg and cfg.train_cfg.val_interval > iters:
        cfg.train_cfg.val_interval = iters


def latest_checkpoint(work_dir: str | os.PathLike) -> str | None:
    """The checkpoint a resume continues from: the one ``last_checkpoint`` names, else the newest ``iter_N.pth``,
    else None."""
    pointer = Path(work_dir) / "last_checkpoint"
    named = pointer.read_text().strip() if pointer.is_file() else ""
    if named and Path(named).is_file():
        return named
    found = [p for p in Path(work_dir).glob("iter_*.pth") if p.stem.split("_")[1].isdigit()]
    return str(max(found, key=lambda p: int(p.stem.split("_")[1]))) if found else None


def _datasets(node: Any, where: str = ""):
    """(path, dataset dict) of every dataset with a ``data_root`` below a dataloader's dataset."""
    if not callable(getattr(node, "items", None)):
        return
    if node.get("data_root"):
        yield where, node
    for key, value in node.items():
        if key in ("dataset", "real", "synthetic"):
            yield from _datasets(value, f"{where}.{key}" if where else key)
        elif key == "datasets" and isinstance(value, list):
            for i, member in enumerate(value):
                yield from _datasets(member, f"{where}.datasets.{i}")


def check_data(cfg, config: str, loaders: Sequence[str]) -> None:
    """Refuse, by name, a dataset folder that does not exist (rather than a traceback from the dataset)."""
    for loader in loaders:
        dataset = cfg.get(loader, {}).get("dataset") if cfg.get(loader) else None
        for where, node in _datasets(dataset or {}, f"{loader}.dataset"):
            root = node["data_root"]
            if Path(root).is_dir():
                continue
            if where.endswith(".synthetic"):
                raise SegmenterRunError(
                    f"{config}: the synthetic pool {root} ({where}.data_root) does not exist: write it with "
                    f"`dpsims-aug generate --labels <data root> --split train --out {root}`, or point the config "
                    "at yours with --cfg-options")
            raise SegmenterRunError(f"{config}: the dataset folder {root} ({where}.data_root) does not exist: point "
                                    "the config at your dataset with --data-root DIR")


def build_segmenter_config(
    config: str | os.PathLike,
    *,
    work_dir: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    max_iters: int | None = None,
    seed: int | None = None,
    resume: str | None = None,
    load_from: str | os.PathLike | None = None,
    cfg_options: Sequence[str] = (),
    launcher: str = "none",
):
    """The mmengine Config of a segmenter run: a config file (a path or a shipped name) and the command's options.

    Args:
        config: An mmseg config file, or the name of a shipped one (``dpsims-aug configs`` lists them).
        work_dir: Logs and checkpoints (default ``work_dirs/<config name>``).
        data_root: Every ``data_root`` of the config becomes this folder, the offline pool ``<data_root>_dpsims``
            (see :func:`dpsims_aug.config_root.set_data_root`).
        max_iters: The run's length; the config's LR schedule is rescaled to it (:func:`rescale_schedule`).
        seed: ``randomness.seed`` (also ``DPSIMSAugment``'s, where the config does not set one).
        resume: ``"auto"`` (the latest checkpoint in ``work_dir``) or a checkpoint file.
        load_from: Initial weights (no optimizer state), e.g. a pretraining run's checkpoint.
        cfg_options: ``KEY=VALUE`` overrides, applied last (``data_root=DIR`` is the same as ``data_root``).
        launcher: ``none``, ``pytorch`` (torchrun), ``slurm`` or ``mpi``.

    Raises:
        SegmenterRunError: the config is missing or broken, or an option cannot be applied.
    """
    from mmengine.config import Config

    from dpsims_aug.config_names import ConfigNotFoundError, find_config
    from dpsims_aug.config_root import set_data_root

    try:
        path = find_config(config, "segmenter")
    except ConfigNotFoundError as err:
        raise SegmenterRunError(str(err)) from None
    try:
        cfg = Config.fromfile(str(path))
    except Exception as err:  # noqa: BLE001 - syntax errors, missing _base_ files, failed imports, ...
        first = next((line for line in str(err).splitlines() if line.strip()), "")
        raise SegmenterRunError(f"config {path} cannot be loaded: {type(err).__name__}: {first[:300]}") from err
    options = _parse_options(cfg_options)
    data_root = data_root or options.pop("data_root", None)
    if data_root is not None:
        if not Path(data_root).is_dir():
            raise SegmenterRunError(f"data root {data_root} is not a folder")
        try:
            set_data_root(cfg, str(data_root))
        except ValueError as err:
            raise SegmenterRunError(f"{path}: cannot set the data root: {err}") from None
    if max_iters is not None:
        if max_iters < 1:
            raise SegmenterRunError(f"--max-iters must be >= 1, got {max_iters}")
        rescale_schedule(cfg, max_iters)
    if seed is not None:
        cfg.randomness = dict(cfg.get("randomness") or {}, seed=seed)
    cfg.merge_from_dict(options)
    cfg.launcher = launcher
    cfg.work_dir = str(work_dir or cfg.get("work_dir") or Path("work_dirs") / path.stem)
    if load_from is not None:
        if not Path(load_from).is_file():
            raise SegmenterRunError(f"--load-from {load_from}: no such file")
        cfg.load_from = str(load_from)
    if resume == "auto":
        found = latest_checkpoint(cfg.work_dir)
        if found is None:
            print(f"no checkpoint found in {cfg.work_dir}; starting from iteration 0", file=sys.stderr)
        else:
            cfg.resume, cfg.load_from = True, found
    elif resume:
        if not Path(resume).is_file():
            raise SegmenterRunError(f"cannot resume from {resume}: no such file")
        cfg.resume, cfg.load_from = True, str(resume)
    return cfg


def _parse_options(cfg_options: Sequence[str]) -> dict:
    import argparse

    from mmengine.config import DictAction

    namespace = argparse.Namespace(options={})
    if cfg_options:
        try:
            DictAction(option_strings=[], dest="options")(None, namespace, list(cfg_options))
        except (ValueError, AssertionError) as err:
            raise SegmenterRunError(f"bad --cfg-options {' '.join(cfg_options)}: {err}") from None
    return dict(namespace.options)


def train_segmenter(cfg, verbose: bool = False, validate: bool = True) -> dict:
    """Train the segmenter of ``cfg`` (from :func:`build_segmenter_config`); then validate the final weights
    unless the config's own validation already ran at the last iteration. ``validate=False``: no validation at all.

    Returns:
        ``iterations``, ``checkpoint`` (the last one saved), ``log`` (the log file) and ``metrics`` (the final
        validation's scalars; empty without a validation dataset or with ``validate=False``).
    """
    from dpsims_aug.mm.checkpoints import allow_mmengine_checkpoints

    if not validate and cfg.get("train_cfg"):
        cfg.train_cfg.val_begin = cfg.train_cfg.max_iters + 1
    check_data(cfg, cfg.filename or "config", ["train_dataloader"] + (["val_dataloader"] if validate else []))
    allow_mmengine_checkpoints()
    runner = build_runner(cfg, verbose)
    progress = next((h for h in runner.hooks if isinstance(h, ProgressHook)), None)
    if not verbose:
        print(f"training {Path(cfg.filename).stem if cfg.filename else 'segmenter'} for {cfg.train_cfg.max_iters} "
              f"iterations in {cfg.work_dir} (log: {log_file(runner)})", file=sys.stderr)
    with console_to_log(runner, verbose):
        runner.train()
        metrics: dict = {}
        if progress is not None and progress.last_val and progress.last_val[0] == runner.iter:
            metrics = progress.last_val[1]
        elif validate and cfg.get("val_dataloader") and cfg.get("val_cfg") is not None:
            metrics = dict(runner.val())
    return dict(iterations=int(runner.iter), checkpoint=latest_checkpoint(cfg.work_dir), log=log_file(runner),
                metrics=_scalars(metrics))


def test_segmenter(cfg, checkpoint: str | os.PathLike, verbose: bool = False,
                   out: str | os.PathLike | None = None) -> dict:
    """Evaluate ``checkpoint`` with ``cfg``'s test loop (mmseg's ``IoUMetric``: the per-class table goes to the
    log); the scalar metrics are returned, and written as JSON to ``out`` when given."""
    from dpsims_aug.mm.checkpoints import allow_mmengine_checkpoints

    if not Path(checkpoint).is_file():
        raise SegmenterRunError(f"checkpoint {checkpoint}: no such file")
    check_data(cfg, cfg.filename or "config", ["test_dataloader"])
    allow_mmengine_checkpoints()
    cfg.load_from, cfg.resume = str(checkpoint), False
    runner = build_runner(cfg, verbose)
    with console_to_log(runner, verbose):
        metrics = _scalars(runner.test())
    if out is not None:
        record = dict(config=cfg.filename, checkpoint=str(checkpoint), metrics=metrics, log=log_file(runner))
        atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    return metrics


def _scalars(metrics: dict) -> dict:
    """The metrics that are numbers (numpy and torch scalars included), as floats."""
    out = {}
    for key, value in (metrics or {}).items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out
