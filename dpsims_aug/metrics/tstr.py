"""Train on synthetic, test on real (TSTR): the fidelity number that augmentation depends on.

An mmseg segmenter is trained on generated images of the training label maps only, then evaluated on held-out real
images; the same segmenter, trained the same way on the *real* images of those label maps, is the reference.
``tstr_ratio = mIoU(synthetic-trained) / mIoU(real-trained)`` says how much of what real images teach a segmenter the
generated ones teach too. Unlike the mIoU of generated images under a real-trained segmenter (label consistency),
it drops when images have the right shapes but the wrong appearance: blown-out colours, lighting the real data
never has, textures a segmenter trained on them cannot transfer.

The segmenter comes from an ordinary mmseg config whose ``train_dataloader.dataset`` is a plain dataset with a
``data_root`` (e.g. ``augment/embedded/fastscnn_embedded_real.py``); its data roots, iterations and seed are
overridden. Runs go to ``work_dir``: ``real/`` (the reference; reused while its settings are unchanged) and
``synthetic_<checkpoint hash>/``, each finished run recorded in ``result.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from dpsims_aug.fileio import atomic_write_text

__all__ = ["train_on_synthetic_test_on_real", "tstr_real_reference"]


def _subset(data: Path, pairs: list[tuple[Path, Path]], folder: Path) -> Path:
    """A dataset folder of symlinks to ``pairs`` (same relative paths as under ``data``), with their instance maps
    where the naming conventions find them inside ``data`` (for generators with instance edges)."""
    from dpsims_aug.instance_edges import find_instance_map

    for image, label in pairs:
        instance = find_instance_map(label)[0]
        inside = instance is not None and instance.is_relative_to(data)
        for src in (image, label, *([instance] if inside else [])):
            dst = folder / src.relative_to(data)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.is_symlink():
                dst.symlink_to(src.resolve())
    return folder


def _train_and_test(config: str | os.PathLike, train_root: Path, val_root: Path, run_dir: Path, iters: int,
                    seed: int, prefixes: dict | None, signature: dict) -> float:
    """Train the segmenter of ``config`` on ``train_root`` for ``iters`` iterations; mIoU (%) on ``val_root``."""
    done = run_dir / "result.json"
    if done.is_file():
        record = json.loads(done.read_text())
        if record.get("signature") == signature:
            return float(record["mIoU"])
    from mmengine.config import Config

    from dpsims_aug.mm.runner import build_runner, console_to_log, rescale_schedule

    cfg = Config.fromfile(str(config))
    train = cfg.train_dataloader.dataset
    if "data_root" not in train:
        raise ValueError(f"{config}: TSTR needs a plain train_dataloader.dataset with a data_root (got a "
                         f"{train.get('type')!r}); use the config that trains on real images only")
    train.data_root = str(train_root)
    if prefixes is not None:
        train.data_prefix = prefixes
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = str(val_root)
        if loader.dataset.get("data_prefix") == cfg.train_dataloader.dataset.get("data_prefix") and prefixes is None:
            raise ValueError(f"{config}: its val/test dataset reads the same folders as its training dataset "
                             f"({loader.dataset.get('data_prefix')}); TSTR must test on held-out images")
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.update(num_workers=0, persistent_workers=False)  # small images: workers cost more than they save
    rescale_schedule(cfg, iters)  # the shipped schedule, rescaled to this length
    cfg.train_cfg.update(val_interval=iters, val_begin=iters + 1)
    cfg.default_hooks.checkpoint.update(interval=iters + 1, save_last=False)
    cfg.default_hooks.logger.update(interval=max(1, min(50, iters)))
    cfg.default_hooks.pop("visualization", None)
    cfg.work_dir = str(run_dir)
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = f"tstr_{run_dir.name}_{time.time_ns()}"
    runner = build_runner(cfg)  # quiet: the Runner's config dump and log lines go to its log file
    with console_to_log(runner):
        runner.train()
        miou = float(runner.val()["mIoU"])
    atomic_write_text(done, json.dumps(dict(signature=signature, mIoU=miou), indent=1) + "\n")
    return miou


def _signature(segmenter_config, maps: int, iters: int, seed: int, val_split: str, **extra) -> dict:
    """What a cached segmenter run depends on (a changed config file, count or schedule retrains it)."""
    config_hash = hashlib.sha256(Path(segmenter_config).read_bytes()).hexdigest()[:16]
    return dict(config=config_hash, maps=maps, iters=iters, seed=seed, val=val_split, **extra)


def tstr_real_reference(
    data: str | os.PathLike,
    segmenter_config: str | os.PathLike,
    work_dir: str | os.PathLike,
    train_split: str = "train",
    val_split: str = "val",
    max_train_maps: int | None = 128,
    iters: int = 1000,
    seed: int = 0,
    dataset_format: str = "auto",
) -> tuple[float, Path]:
    """The TSTR reference: mIoU (%) of the segmenter trained on the *real* images of the first ``max_train_maps``
    training maps, tested on ``val_split``; trained once in ``work_dir/real`` and reused while its settings hold.

    Returns:
        ``(mIoU, subset folder)``; the folder holds (links to) those training pairs in the dataset's format.
    """
    from dpsims_aug.data.readers import find_pairs
    from dpsims_aug.data.splits import SplitLeakError, canonical_split

    if canonical_split(val_split) == canonical_split(train_split):
        raise SplitLeakError(f"TSTR tests on held-out real images: the test split ({val_split!r}) must not be the "
                             f"training split ({train_split!r})")
    data, work_dir = Path(data), Path(work_dir)
    pairs = find_pairs(data, dataset_format=dataset_format, split=train_split)[: max_train_maps or None]
    if not pairs:
        raise ValueError(f"{data}: no training pairs in split {train_split!r}")
    subset = _subset(data, pairs, work_dir / "subset")
    signature = _signature(segmenter_config, len(pairs), iters, seed, val_split, kind="real")
    return _train_and_test(segmenter_config, subset, data, work_dir / "real", iters, seed, None, signature), subset


def train_on_synthetic_test_on_real(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    segmenter_config: str | os.PathLike,
    work_dir: str | os.PathLike,
    train_split: str = "train",
    val_split: str = "val",
    max_train_maps: int | None = 128,
    n: int = 1,
    iters: int = 1000,
    seed: int = 0,
    dataset_format: str = "auto",
    device: str = "cpu",
    log=None,
    edges: str = "instances",
) -> dict[str, float]:
    """TSTR of a generator checkpoint (see the module docstring).

    Args:
        checkpoint: Generator checkpoint.
        data: Dataset root (a dataset format :func:`~dpsims_aug.data.readers.find_pairs` reads, with both splits).
        segmenter_config: mmseg config of the segmenter (its train set: a plain dataset with ``data_root``).
        work_dir: Where the subset, the generated images and the two segmenter runs go.
        train_split, val_split: Label maps to synthesize from / real images to test on.
        max_train_maps: Use the first N training label maps (``None``: all).
        n: Generated images per training label map.
        iters: Iterations of both segmenter runs (the config's schedule rescaled).
        seed: Seed of the generated images and of both segmenter runs.
        dataset_format: Dataset format, the on-disk folder structure (``auto`` detects it).
        device: Where the generator runs (the segmenter follows mmengine's default device).
        log: Optional callable receiving progress lines.
        edges: Generators with instance edges: ``'instances'`` (the training maps' instance maps, linked into the
            subset) or ``'from-labels'`` (as ``generate --edges``).

    Returns:
        ``tstr_miou_synthetic``, ``tstr_miou_real`` (mIoU %, held-out real images) and ``tstr_ratio``.
    """
    from dpsims_aug.checkpoint import file_sha256
    from dpsims_aug.pool.writer import generate

    data, work_dir = Path(data), Path(work_dir)
    say = log or (lambda _msg: None)
    say(f"[tstr] real reference: up to {max_train_maps} real training images, {iters} iterations")
    miou_real, subset = tstr_real_reference(data, segmenter_config, work_dir, train_split, val_split, max_train_maps,
                                            iters, seed, dataset_format)
    ckpt_hash = file_sha256(checkpoint)
    pool = work_dir / f"synthetic_{ckpt_hash[:12]}"
    say(f"[tstr] generating {n} image(s) per training label map into {pool}")
    summary = generate(labels=subset, n=n, out=pool / "pool", checkpoint=checkpoint, dataset_format=dataset_format,
                       split=train_split, device=device, seed=seed, progress=False, workers=1, edges=edges)
    if summary.skipped:
        raise ValueError(f"TSTR: {len(summary.skipped)} training label maps could not be synthesized, first: "
                         f"{summary.skipped[0]}")
    say(f"[tstr] segmenter on the synthetic images, {iters} iterations")
    signature = _signature(segmenter_config, summary.label_maps, iters, seed, val_split, kind="synthetic",
                           checkpoint=ckpt_hash, n=n)
    miou_syn = _train_and_test(segmenter_config, pool / "pool", data, pool / "run", iters, seed,
                               dict(img_path="images", seg_map_path="annotations"), signature)
    return {"tstr_miou_synthetic": miou_syn, "tstr_miou_real": miou_real,
            "tstr_ratio": miou_syn / miou_real if miou_real > 0 else float("nan")}
