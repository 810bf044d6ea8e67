"""``dpsims-aug evaluate``: fidelity of a generator checkpoint on a dataset split.

For every label map of the split, one image per seed ``derive_seed(seed, key, k)``, ``k < n_seeds`` (the same images
``dpsims-aug generate`` would write), then in one streaming pass: FID and KID against the split's real images
(reference statistics cached) with their real-vs-real floors, colour statistics against the real images of the same
label maps, mIoU of a segmenter on the generated and on the real images (when one is given), and diversity across
seeds.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from dpsims_aug.data.readers import read_rgb
from dpsims_aug.fileio import atomic_write_text
from dpsims_aug.label_maps import load_label_map
from dpsims_aug.labels import LabelSpace
from dpsims_aug.metrics.registry import EvalBatch, build_metrics

__all__ = ["evaluate", "fidelity_metrics", "format_table", "iter_eval_batches"]


def _same_size_chunks(labels: Sequence[np.ndarray], max_len: int) -> Iterator[range]:
    """Consecutive index ranges of at most ``max_len`` label maps that share one size (one synthesis call each)."""
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or i - start == max_len or labels[i].shape != labels[start].shape:
            yield range(start, i)
            start = i


def iter_eval_batches(
    synthesizer,
    pairs: Sequence[tuple[Path, Path]],
    keys: Sequence[str],
    label_space: LabelSpace,
    n_seeds: int,
    seed: int = 0,
    maps_per_batch: int = 8,
    with_reals: bool = False,
    instance_paths: Sequence[Path] | None = None,
) -> Iterator[EvalBatch]:
    """Synthesize ``n_seeds`` images per label map and yield them in :class:`EvalBatch` es.

    Args:
        synthesizer: A :class:`~dpsims_aug.synthesis.Synthesizer`.
        pairs: ``(image, label map)`` files.
        keys: The label maps' keys (relative label paths), which seed them.
        label_space: Raw ids on disk -> contiguous ids.
        n_seeds: Images per label map.
        seed: Global seed.
        maps_per_batch: Label maps per yielded batch.
        with_reals: Also load the real images.
        instance_paths: One instance map per pair, for a generator with instance edges (without them it gets the
            label maps' class boundaries).
    """
    import torch

    from dpsims_aug.instance_edges import read_instance_edges
    from dpsims_aug.synthesis import derive_seed

    for start in range(0, len(pairs), maps_per_batch):
        chunk_pairs = pairs[start : start + maps_per_batch]
        chunk_keys = list(keys[start : start + maps_per_batch])
        labels = [load_label_map(label_path, label_space) for _, label_path in chunk_pairs]
        edges = None
        if instance_paths is not None and synthesizer.config.use_instance_edges:
            edges = [read_instance_edges(path, lab.shape, str(label_path)) for path, lab, (_, label_path)
                     in zip(instance_paths[start : start + maps_per_batch], labels, chunk_pairs)]
        fakes: list[np.ndarray] = []
        for idx in _same_size_chunks(labels, len(labels)):
            maps = [labels[i] for i in idx for _ in range(n_seeds)]
            seeds = [derive_seed(seed, chunk_keys[i], k) for i in idx for k in range(n_seeds)]
            sources = [str(chunk_pairs[i][1]) for i in idx for _ in range(n_seeds)]
            chunk_edges = None if edges is None else torch.from_numpy(
                np.stack([edges[i] for i in idx for _ in range(n_seeds)]))[:, None]
            images = synthesizer.synthesize(maps, seeds, sources=sources, edges=chunk_edges)
            fakes.extend(images.reshape(len(idx), n_seeds, *images.shape[1:]))
        reals = None
        if with_reals:
            reals = [read_rgb(image_path) for image_path, _ in chunk_pairs]
            for (image_path, label_path), real, lab in zip(chunk_pairs, reals, labels):
                if real.shape[:2] != lab.shape:
                    raise ValueError(f"{image_path}: image is {real.shape[1]}x{real.shape[0]} but its label map "
                                     f"{label_path} is {lab.shape[1]}x{lab.shape[0]}")
        yield EvalBatch(labels=labels, fakes=fakes, reals=reals, keys=chunk_keys)


def fidelity_metrics(
    batches: Iterable[EvalBatch],
    space: LabelSpace,
    *,
    device,
    batch_size: int,
    reference,
    n_seeds: int = 1,
    segmenter=None,
    real_features: np.ndarray | None = None,
    on_batch=None,
) -> dict[str, float]:
    """The metric loop of ``evaluate`` and of the trainer's evaluation hook: FID/KID against ``reference``,
    colour statistics, mIoU when a ``segmenter`` is given, diversity when ``n_seeds >= 2``; one streaming pass over
    ``batches`` (``on_batch(batch)`` after each, e.g. a progress bar).

    ``real_features``: Inception features of the batches' real images in stream order, when they are known
    already (the hook computes them once) and the batches carry no real images for them.
    """
    fid = dict(device=str(device), batch_size=batch_size, reference=reference)
    if real_features is not None:
        fid["real_features"] = real_features
    settings: dict[str, dict] = dict(fid=fid, colour=dict(num_classes=space.num_classes,
                                                          ignore_index=space.ignore_index))
    if segmenter is not None:
        settings["miou"] = dict(segmenter=segmenter, ignore_index=space.ignore_index)
    if n_seeds >= 2:
        settings["diversity"] = dict(device=str(device), batch_size=batch_size)
    metrics = build_metrics(settings)  # the Inception network is loaded once (cached) and shared
    for batch in batches:
        for metric in metrics.values():
            metric.update(batch)
        if on_batch is not None:
            on_batch(batch)
    values: dict[str, float] = {}
    for metric in metrics.values():
        values.update(metric.compute())
    return values


def evaluate(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    split: str = "val",
    n_seeds: int = 3,
    max_images: int | None = None,
    segmenter_config: str | os.PathLike | None = None,
    segmenter_checkpoint: str | os.PathLike | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    dtype: str = "fp32",
    seed: int = 0,
    dataset_format: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    tstr_config: str | os.PathLike | None = None,
    tstr_iters: int = 1000,
    tstr_maps: int | None = 128,
    tstr_work_dir: str | os.PathLike | None = None,
    train_split: str = "train",
    edges: str = "instances",
) -> dict:
    """Evaluate a generator checkpoint on the ``split`` of the dataset at ``data``.

    Args:
        checkpoint: Generator checkpoint (``.safetensors``, from ``dpsims-aug export`` / training).
        data: Dataset root (any dataset format :func:`~dpsims_aug.data.readers.find_pairs` reads).
        split: Split whose label maps are synthesized and whose images are the FID reference.
        n_seeds: Images per label map (diversity needs at least 2).
        max_images: Use only the first N label maps (and their images).
        segmenter_config, segmenter_checkpoint: An mmseg segmenter trained on real images; enables mIoU.
        batch_size: Images per generator / feature-network forward.
        device, dtype: Where and how the generator runs.
        seed: Global seed of :func:`~dpsims_aug.synthesis.derive_seed`.
        dataset_format: Dataset format, the on-disk folder structure (``auto`` detects it).
        cache_dir: FID reference statistics cache (default ``~/.cache/dpsims-aug/fid``).
        out: Also write the result as JSON here (atomically).
        progress: Show tqdm bars.
        tstr_config: mmseg config of a segmenter for TSTR (:func:`~dpsims_aug.metrics.tstr.
            train_on_synthetic_test_on_real`: trained on generated images of ``tstr_maps`` label maps of
            ``train_split`` for ``tstr_iters`` iterations, tested on the real images of ``split``); runs in
            ``tstr_work_dir`` (default ``work_dirs/tstr``).
        train_split: The training split (TSTR).
        edges: For a generator with instance edges: ``'instances'`` (each label map's instance map, found by the
            conventions of :mod:`dpsims_aug.instance_edges`; a map without one is refused by name) or
            ``'from-labels'`` (class boundaries).

    Returns:
        ``{"metrics": {name: value}, "info": {...}}``.
    """
    from dpsims_aug.synthesis import Synthesizer

    _check_evaluate_options(n_seeds, segmenter_config, segmenter_checkpoint)
    started = time.perf_counter()
    data = Path(data)
    synthesizer = Synthesizer.from_checkpoint(checkpoint, device=device, dtype=dtype, batch_size=batch_size)
    pairs, keys = _split_pairs(data, split, dataset_format, max_images)
    instance_paths = _instance_paths(pairs, edges, synthesizer.config.use_instance_edges)
    reference, cached = _fid_reference(pairs, data, cache_dir, device, batch_size, progress)
    segmenter = _load_segmenter(segmenter_config, segmenter_checkpoint, device, synthesizer.label_space)
    values = _generated_metrics(synthesizer, pairs, keys, instance_paths, reference, segmenter, n_seeds=n_seeds,
                                seed=seed, batch_size=batch_size, device=device, progress=progress)
    if tstr_config is not None:
        from dpsims_aug.metrics.tstr import train_on_synthetic_test_on_real

        values.update(train_on_synthetic_test_on_real(
            checkpoint, data, tstr_config, tstr_work_dir or Path("work_dirs") / "tstr", train_split=train_split,
            val_split=split, max_train_maps=tstr_maps, iters=tstr_iters, seed=seed, dataset_format=dataset_format,
            device=device, log=(lambda m: print(m, flush=True)) if progress else None, edges=edges))
    info = _result_info(
        checkpoint=checkpoint, synthesizer=synthesizer, data=data, split=split, label_maps=len(pairs), n_seeds=n_seeds,
        seed=seed, device=device, dtype=dtype, segmenter_config=segmenter_config,
        segmenter_checkpoint=segmenter_checkpoint, tstr_config=tstr_config, tstr_iters=tstr_iters, cached=cached,
        started=started)
    result = {"metrics": values, "info": info}
    if out is not None:
        atomic_write_text(out, json.dumps(_json_safe(result), indent=2) + "\n")
    return result


def _check_evaluate_options(n_seeds: int, segmenter_config: str | os.PathLike | None,
                            segmenter_checkpoint: str | os.PathLike | None) -> None:
    """Refuse inconsistent options before anything is loaded."""
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    if (segmenter_config is None) != (segmenter_checkpoint is None):
        raise ValueError("give both --segmenter-config and --segmenter-checkpoint, or neither")


def _split_pairs(data: Path, split: str, dataset_format: str,
                 max_images: int | None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """The split's first ``max_images`` ``(image, label map)`` pairs and their keys (which seed the images)."""
    from dpsims_aug.data.readers import find_pairs

    pairs = find_pairs(data, dataset_format=dataset_format, split=split)
    if max_images is not None:
        pairs = pairs[:max_images]
    if not pairs:
        raise ValueError(f"{data}: no image/label pairs in split {split!r}")
    keys = [label.relative_to(data).as_posix() for _, label in pairs]
    return pairs, keys


def _instance_paths(pairs: Sequence[tuple[Path, Path]], edges: str,
                    use_instance_edges: bool) -> list[Path] | None:
    """Each label map's instance map when the generator takes instance edges from them, else None (class
    boundaries); a label map without one is refused by name."""
    from dpsims_aug.instance_edges import check_edge_mode, find_instance_map, missing_instance_map

    # check_edge_mode first: a bad --edges is refused whatever the generator.
    if check_edge_mode(edges, "--edges") != "instances" or not use_instance_edges:
        return None
    instance_paths = []
    for _, label in pairs:
        found, expected = find_instance_map(label)
        if found is None:
            raise missing_instance_map(label, expected, "the generator was trained with instance edges: pass "
                                                        "--edges from-labels to use the class boundaries")
        instance_paths.append(found)
    return instance_paths


def _fid_reference(pairs: Sequence[tuple[Path, Path]], data: Path, cache_dir: str | os.PathLike | None, device: str,
                   batch_size: int, progress: bool) -> tuple:
    """(FID reference statistics of the split's real images, whether they came from the cache)."""
    from dpsims_aug.metrics.fid import InceptionFeatures, reference_stats

    inception = InceptionFeatures(device, batch_size)
    return reference_stats([image for image, _ in pairs], root=data, cache_dir=cache_dir, features=inception,
                           progress=progress)


def _load_segmenter(segmenter_config: str | os.PathLike | None, segmenter_checkpoint: str | os.PathLike | None,
                    device: str, label_space: LabelSpace):
    """The mIoU segmenter (None without one), refused when its classes are not the generator's."""
    from dpsims_aug.mm.segmenter import Segmenter

    if segmenter_config is None:
        return None
    segmenter = Segmenter.from_files(segmenter_config, segmenter_checkpoint, device=device)
    if segmenter.num_classes != label_space.num_classes:
        raise ValueError(f"the segmenter predicts {segmenter.num_classes} classes but the generator's label "
                         f"space {label_space.name!r} has {label_space.num_classes}")
    return segmenter


def _generated_metrics(synthesizer, pairs: Sequence[tuple[Path, Path]], keys: Sequence[str],
                       instance_paths: Sequence[Path] | None, reference, segmenter, *, n_seeds: int, seed: int,
                       batch_size: int, device: str, progress: bool) -> dict[str, float]:
    """Generate ``n_seeds`` images per pair and measure them in one streaming pass (with a progress bar)."""
    from tqdm import tqdm

    bar = tqdm(total=len(pairs) * n_seeds, desc="evaluate", unit="img", disable=not progress)
    batches = iter_eval_batches(synthesizer, pairs, keys, synthesizer.label_space, n_seeds, seed=seed,
                                maps_per_batch=max(1, batch_size // n_seeds), with_reals=True,
                                instance_paths=instance_paths)
    values = fidelity_metrics(batches, synthesizer.label_space, device=device, batch_size=batch_size,
                              reference=reference, n_seeds=n_seeds, segmenter=segmenter,
                              on_batch=lambda batch: bar.update(len(batch.labels) * n_seeds))
    bar.close()
    return values


def _result_info(*, checkpoint: str | os.PathLike, synthesizer, data: Path, split: str, label_maps: int,
                 n_seeds: int, seed: int, device: str, dtype: str, segmenter_config: str | os.PathLike | None,
                 segmenter_checkpoint: str | os.PathLike | None, tstr_config: str | os.PathLike | None,
                 tstr_iters: int, cached: bool, started: float) -> dict:
    """The ``info`` part of :func:`evaluate`'s result (``seconds``: since ``started``, measured now)."""
    return {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": synthesizer.checkpoint_sha256,
        "data": str(data),
        "split": split,
        "label_space": synthesizer.label_space.name,
        "label_maps": label_maps,
        "n_seeds": n_seeds,
        "images": label_maps * n_seeds,
        "seed": seed,
        "device": device,
        "dtype": dtype,
        "segmenter_config": None if segmenter_config is None else str(segmenter_config),
        "segmenter_checkpoint": None if segmenter_checkpoint is None else str(segmenter_checkpoint),
        "tstr_config": None if tstr_config is None else str(tstr_config),
        "tstr_iters": tstr_iters if tstr_config is not None else None,
        "fid_reference_cached": cached,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _json_safe(value):
    """NaN/inf -> None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_LABELS = {
    "fid": ("FID (lower is better)", "{:.2f}"),
    "fid_matched": ("FID at the floor's sample count", "{:.2f}"),
    "fid_floor": ("FID floor (real vs real)", "{:.2f}"),
    "kid": ("KID x 1000 (lower is better)", "{:.2f}", 1000.0),
    "kid_floor": ("KID x 1000 floor (real vs real)", "{:.2f}", 1000.0),
    "colour_class_distance": ("per-class colour distance (RGB)", "{:.1f}"),
    "contrast_ratio": ("contrast generated / real", "{:.3f}"),
    "clipped_white_ratio": ("near-white pixels, gen. / real", "{:.2f}"),
    "clipped_black_ratio": ("near-black pixels, gen. / real", "{:.2f}"),
    "tstr_miou_synthetic": ("TSTR: mIoU, trained on generated", "{:.2f}"),
    "tstr_miou_real": ("TSTR: mIoU, trained on real", "{:.2f}"),
    "tstr_ratio": ("TSTR generated / real", "{:.3f}"),
    "miou_fake": ("mIoU on generated images (%)", "{:.2f}"),
    "miou_real": ("mIoU on real images (%)", "{:.2f}"),
    "miou_ratio": ("mIoU generated / real", "{:.3f}"),
    "diversity_pixel_l1": ("diversity, pixel mean |a-b|", "{:.4f}"),
    "diversity_feature_cosine": ("diversity, feature 1-cos", "{:.4f}"),
}


def format_table(result: dict) -> str:
    """A short human-readable table of :func:`evaluate`'s result."""
    info, values = result["info"], result["metrics"]
    lines = [f"{info['label_maps']} label maps x {info['n_seeds']} seeds from {info['data']} ({info['split']})"]
    for key, (label, fmt, *scale) in _LABELS.items():
        if key in values and values[key] is not None:
            value = values[key] * (scale[0] if scale else 1.0)
            lines.append(f"  {label:<32} {fmt.format(value) if math.isfinite(value) else 'n/a'}")
    return "\n".join(lines)
