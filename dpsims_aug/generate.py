"""Offline dataset generation behind ``dpsims-aug generate``: N synthetic images per real label map.

Output folder (mmseg-ready)::

    images/<stem>_s<k>.jpg          synthetic image k of label map <stem>
    annotations/<stem>_s<k>.png     that label map, unchanged (a hard link to the source where possible)
    manifest.jsonl                  one JSON line per finished image (key, k, seed, checkpoint and image hashes, paths)
    dataset_config.py               mmseg dataset config (BaseSegDataset) for this folder
    labels.json                     the LabelSpace of the annotations
    preview.png                     with --grid: colourized label map | samples, for the first maps

Crash safety and resume: every file is written atomically; a manifest line is appended (flush + fsync) only after
its image and annotation exist. A re-run reads the manifest, checks that what it lists exists, and makes only what is
missing. Seeds come from :func:`~dpsims_aug.synthesis.derive_seed` and the model always runs at the same batch
shape, so a killed and resumed run gives the same bytes as an uninterrupted one.

Sharding: ``shard=(i, N)`` (or torchrun's RANK/WORLD_SIZE) takes label maps ``i, i+N, ...``; each shard appends to
``manifest.shard-i-of-N.jsonl`` and marks itself done; the last shard to finish merges the parts into
``manifest.jsonl`` (sorted by key and k) and writes the shared files.

Throughput: label maps are decoded by a thread pool ahead of the model, and encoding/writing runs in writer threads
while the model works on the next batch.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from io import BytesIO
from pathlib import Path, PurePosixPath

import numpy as np

from dpsims_aug.data.readers import LabelMapRef, find_label_maps, hf_label_maps
from dpsims_aug.fileio import atomic_path, atomic_write_bytes, atomic_write_text
from dpsims_aug.labels import LabelMapError, LabelSpace
from dpsims_aug.pool.format import (
    MANIFEST,
    ManifestWriter,
    dataset_config_text,
    manifest_part_name,
    read_manifest_records,
    reduce_zero_label_of,
)
from dpsims_aug.synthesis import Synthesizer, default_checkpoint_path, derive_seed

IMAGE_FORMATS = {"jpg": ("JPEG", ".jpg"), "png": ("PNG", ".png")}
JPEG_QUALITY = 95  # fixed: the encoder is deterministic at a fixed quality, so resumed runs are byte-identical
CACHE_BYTES = 1 << 30  # decoded label maps kept from the validation pass (avoids decoding them twice)
PREVIEW_ROWS, PREVIEW_COLS = 4, 6


class GenerateError(RuntimeError):
    """A ``generate`` run cannot start or continue; the message says why and what to do."""


@dataclass
class GenerateSummary:
    """What a :func:`generate` call did (also printed by the CLI)."""

    out: Path
    shard: tuple[int, int]
    label_maps: int = 0
    images_total: int = 0
    already_done: int = 0
    generated: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    merged: bool = False
    manifest: Path | None = None
    preview: Path | None = None
    hf_dataset: Path | None = None
    dry_run: bool = False

    @property
    def images_per_second(self) -> float:
        """Generated images per wall-clock second of this call."""
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def default_sample_labels_path() -> Path:
    """The bundled sample label maps (``dpsims_aug/assets/sample_labels``)."""
    return Path(str(resources.files("dpsims_aug").joinpath("assets", "sample_labels")))


def resolve_shard(shard: tuple[int, int] | str | None = None) -> tuple[int, int]:
    """``(i, N)`` from ``shard`` (``"i/N"`` or a tuple), else from torchrun's ``RANK``/``WORLD_SIZE``, else (0, 1)."""
    if isinstance(shard, str):
        try:
            i, n = (int(v) for v in shard.split("/"))
        except ValueError as err:
            raise GenerateError(f"--shard must look like i/N (e.g. 0/4), got {shard!r}") from err
        shard = (i, n)
    if shard is None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        shard = (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise GenerateError(f"shard {i}/{n} is invalid: need 0 <= i < N")
    return i, n


def resolve_device(device: str) -> str:
    """Under torchrun, plain ``cuda`` becomes ``cuda:<LOCAL_RANK>`` (one GPU per process)."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def _safe_stem(stem: str, name: str) -> str:
    """Refuse output names that would leave the output folder (absolute, ``..``, backslashes, empty)."""
    path = PurePosixPath(stem)
    if not stem or "\\" in stem or path.is_absolute() or any(p in ("..", "") for p in stem.split("/")):
        raise GenerateError(
            f"{name}: its key {stem!r} would put outputs outside the output folder (absolute or '..' path); "
            "rename it or give the dataset another id column"
        )
    return path.as_posix()


# ------------------------------------------------------------------------------------------------ work


@dataclass
class _Item:
    index: int  # position in the full (unsharded) list
    ref: LabelMapRef
    pending: list[int]  # k values still to make
    shape: tuple[int, int] | None = None


def _encode_image(rgb: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = BytesIO()
    if fmt == "JPEG":
        Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _encode_label(ids: np.ndarray) -> bytes:
    from PIL import Image

    buf = BytesIO()
    Image.fromarray(ids.astype(np.uint8 if ids.max(initial=0) < 256 else np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def _write_annotation(dst: Path, source: Path | None, png: bytes | None) -> None:
    """Atomically place the annotation: a hard link to ``source`` (copy across filesystems), or ``png`` bytes."""
    if source is None:
        atomic_write_bytes(dst, png)
        return
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _clean_temp_files(out: Path, owned: set[str] | None) -> None:
    """Remove temp files left by killed writers (``.<name>.<random>.tmp<suffix>``); only those of ``owned``
    output paths when other shards may be writing concurrently (``None`` = all)."""
    for sub in ("images", "annotations", "."):
        folder = out / sub
        if not folder.is_dir():
            continue
        walker = os.walk(folder) if sub != "." else [(str(folder), [], os.listdir(folder))]
        for dirpath, _, files in walker:
            for fname in files:
                if not fname.startswith(".") or ".tmp" not in fname:
                    continue
                final = fname[1:].rsplit(".tmp", 1)[0].rsplit(".", 1)[0]
                rel = (Path(dirpath) / final).relative_to(out).as_posix()
                if owned is None or rel in owned:
                    (Path(dirpath) / fname).unlink(missing_ok=True)


def _prefetch(fn: Callable, items: Sequence, workers: int, ahead: int) -> Iterator:
    """``map(fn, items)`` in order, computed by ``workers`` threads at most ``ahead`` items in advance."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="dpsims-read") as pool:
        queue: deque[Future] = deque()
        it = iter(items)
        for item in it:
            queue.append(pool.submit(fn, item))
            if len(queue) >= ahead:
                break
        while queue:
            yield queue.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                queue.append(pool.submit(fn, nxt))


# ------------------------------------------------------------------------------------------------ main


def generate(
    labels: str | os.PathLike | None = None,
    n: int = 4,
    out: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    layout: str = "auto",
    split: str | None = None,
    train_ids: bool = False,
    hf: str | os.PathLike | None = None,
    hf_split: str = "train",
    hf_column: str = "label",
    hf_id_column: str | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    dtype: str = "fp32",
    seed: int = 0,
    image_format: str = "jpg",
    shard: tuple[int, int] | str | None = None,
    on_error: str = "stop",
    dry_run: bool = False,
    grid: bool = False,
    hf_out: bool = False,
    workers: int = 2,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> GenerateSummary:
    """Write ``n`` synthetic images per label map (see the module docstring for layout and guarantees).

    Args:
        labels: Dataset root or folder of label maps (default: the bundled sample label maps).
        n: Images per label map.
        out: Output folder (default: ``<labels>_dpsims`` next to ``labels``).
        checkpoint: Generator file (default: the bundled model trained on the embedded dataset).
        layout, split, train_ids: How to find label maps (see :func:`~dpsims_aug.data.readers.find_label_maps`).
        hf, hf_split, hf_column, hf_id_column: Read label maps from a Hugging Face dataset instead.
        batch_size: Images per forward (part of the determinism contract, see :mod:`dpsims_aug.synthesis`).
        device, dtype: Where and in which precision (``fp32|bf16|fp16``) the generator runs.
        seed: Global seed; image k of map ``key`` uses ``derive_seed(seed, key, k)``.
        image_format: ``jpg`` or ``png``.
        shard: ``(i, N)`` or ``"i/N"``; default from torchrun's environment.
        on_error: ``stop`` (refuse the run on the first bad label maps, before generating) or ``skip`` them.
        dry_run: Only count label maps, images to make and images already done.
        grid: Write ``preview.png`` (label map | samples) for the first maps.
        hf_out: Also write a Hugging Face dataset (image, label) of the outputs to ``<out>/hf``.
        workers: Threads decoding label maps and threads encoding images.
        progress: Show a tqdm bar (images/s).
        log: Where messages go (default: stderr).

    Raises:
        GenerateError, LabelMapError, CheckpointError: with a message naming the problem and the files.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    started = time.perf_counter()
    if n < 1:
        raise GenerateError(f"--n must be >= 1, got {n}")
    if on_error not in ("stop", "skip"):
        raise GenerateError(f"--on-error must be 'stop' or 'skip', got {on_error!r}")
    if image_format not in IMAGE_FORMATS:
        raise GenerateError(f"--format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
    pil_format, img_suffix = IMAGE_FORMATS[image_format]
    shard = resolve_shard(shard)
    device = resolve_device(device)

    # Inputs.
    if hf is not None:
        refs = hf_label_maps(hf, split=hf_split, label_column=hf_column, id_column=hf_id_column)
        default_out = Path.cwd() / f"{Path(str(hf)).name}_dpsims"
        input_root = Path(hf) if Path(hf).is_dir() else None
    else:
        bundled = labels is None
        labels = Path(labels) if labels is not None else default_sample_labels_path()
        if not labels.is_dir():
            if bundled:
                raise GenerateError(
                    f"no --labels given and the bundled sample label maps are not installed ({labels}); "
                    "pass --labels DIR (e.g. a folder written by `dpsims-aug dataset`)"
                )
            raise LabelMapError(labels, "is not a folder")
        refs = find_label_maps(labels, layout=layout, split=split, train_ids=train_ids)
        default_out = Path.cwd() / "sample_labels_dpsims" if bundled else labels.parent / f"{labels.name}_dpsims"
        input_root = labels
    out = Path(out) if out is not None else default_out
    if input_root is not None and out.resolve().is_relative_to(input_root.resolve()):
        raise GenerateError(f"--out {out} lies inside the input folder {input_root}; choose a folder outside it")
    stems: dict[str, str] = {}
    for ref in refs:
        stem = _safe_stem(ref.stem, ref.name)
        if stem in stems:
            raise GenerateError(f"{ref.name} and {stems[stem]} map to the same output name {stem!r}")
        stems[stem] = ref.name

    # Model.
    if checkpoint is None:
        checkpoint = default_checkpoint_path()
        if not checkpoint.is_file():
            raise GenerateError(
                f"no --checkpoint given and the bundled default generator is not installed ({checkpoint}); "
                "pass --checkpoint FILE (a generator exported by train_gan)"
            )
    synth = Synthesizer.from_checkpoint(checkpoint, device=device, dtype=dtype, batch_size=batch_size)
    space = synth.label_space
    ckpt_sha = synth.checkpoint_sha256
    reduce_zero = reduce_zero_label_of(space)
    link_raw = reduce_zero is not None  # else annotations are written as contiguous ids mmseg can read directly
    ann_space = space if link_raw else space.contiguous()

    # What is done already (any shard, any earlier run)?
    def out_paths(ref: LabelMapRef, k: int) -> tuple[str, str]:
        return f"images/{ref.stem}_s{k}{img_suffix}", f"annotations/{ref.stem}_s{k}.png"

    records = read_manifest_records(out) if out.is_dir() else {}
    by_key = {ref.key: ref for ref in refs}
    for (key, k), rec in records.items():
        if rec.get("checkpoint_sha256") != ckpt_sha:
            raise GenerateError(
                f"{out} holds images made with another checkpoint (sha256 {rec.get('checkpoint_sha256')}); "
                "use another --out, or the same --checkpoint to resume"
            )
        if key in by_key and rec.get("seed") != derive_seed(seed, key, k):
            raise GenerateError(f"{out} holds images made with another --seed; use another --out or the same seed")
        if key in by_key and rec.get("image") != out_paths(by_key[key], k)[0]:
            raise GenerateError(
                f"{out} holds {rec.get('image')} for {key}, but this run would write {out_paths(by_key[key], k)[0]} "
                "(another --format or --layout?); use another --out, or the same options to resume"
            )

    def is_done(ref: LabelMapRef, k: int) -> bool:
        rec = records.get((ref.key, k))
        if rec is None:
            return False
        image, ann = out / str(rec.get("image")), out / str(rec.get("annotation"))
        return image.is_file() and ann.is_file() and image.stat().st_size == rec.get("image_bytes")

    mine = [_Item(i, ref, []) for i, ref in enumerate(refs) if i % shard[1] == shard[0]]
    done = 0
    for item in mine:
        item.pending = [k for k in range(n) if not is_done(item.ref, k)]
        done += n - len(item.pending)
    summary = GenerateSummary(
        out=out, shard=shard, label_maps=len(mine), images_total=len(mine) * n, already_done=done, dry_run=dry_run
    )
    if dry_run:
        summary.seconds = time.perf_counter() - started
        return summary

    out.mkdir(parents=True, exist_ok=True)
    owned = {p for item in mine for k in range(n) for p in out_paths(item.ref, k)}
    _clean_temp_files(out, owned if shard[1] > 1 else None)
    atomic_write_text(out / "labels.json", ann_space.to_json())
    atomic_write_text(
        out / "dataset_config.py",
        dataset_config_text(out, ann_space, img_suffix, reduce_zero if link_raw else False),
    )

    # Validate every label map still to be used before generating anything.
    todo = [item for item in mine if item.pending]
    cache: dict[int, np.ndarray] = {}
    cached_bytes = 0

    def load(item: _Item) -> tuple[_Item, np.ndarray | None, str | None]:
        try:
            # to_contiguous refuses unknown raw ids (naming them and the file), so ids fit the model afterwards.
            return item, space.to_contiguous(item.ref.read(), source=item.ref.name), None
        except LabelMapError as err:
            return item, None, str(err)
        except (OSError, ValueError) as err:  # e.g. undecodable image inside a HF dataset
            return item, None, f"{item.ref.name}: unreadable label map ({err})"

    bad: list[tuple[str, str]] = []
    valid: list[_Item] = []
    for item, ids, error in _prefetch(load, todo, workers, 4 * max(1, workers)):
        if error is not None:
            bad.append((item.ref.name, error))
            continue
        item.shape = ids.shape
        valid.append(item)
        if cached_bytes + ids.nbytes <= CACHE_BYTES:
            cache[item.index] = ids
            cached_bytes += ids.nbytes
    if bad and on_error == "stop":
        shown = "\n".join(f"  {msg}" for _, msg in bad[:20]) + (f"\n  ... ({len(bad)} in all)" if len(bad) > 20 else "")
        raise GenerateError(
            f"{len(bad)} label map(s) cannot be used; nothing was generated (use --on-error skip to skip them):\n"
            f"{shown}"
        )
    summary.skipped.extend(bad)
    for name, msg in bad:
        log(f"skipping {msg}" if msg.startswith(name) else f"skipping {name}: {msg}")

    # Generate: reader threads -> batches per size -> model -> writer threads (+ durable manifest lines).
    total = sum(len(item.pending) for item in valid)
    manifest = ManifestWriter(out / manifest_part_name(shard))
    writers = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="dpsims-write")
    in_flight: deque[tuple[Future, int]] = deque()

    def write_batch(entries: list[tuple[_Item, int, int]], images: np.ndarray, label_arrays: list[np.ndarray]):
        records_out = []
        for (item, k, s), rgb, ids in zip(entries, images, label_arrays):
            image_rel, ann_rel = out_paths(item.ref, k)
            data = _encode_image(rgb, pil_format)
            atomic_write_bytes(out / image_rel, data)
            if link_raw and item.ref.path is not None:
                _write_annotation(out / ann_rel, item.ref.path, None)
            else:
                png = _encode_label(space.to_raw(ids) if link_raw else ids)
                _write_annotation(out / ann_rel, None, png)
            records_out.append(
                {
                    "key": item.ref.key,
                    "k": k,
                    "seed": s,
                    "checkpoint_sha256": ckpt_sha,
                    "image": image_rel,
                    "annotation": ann_rel,
                    "image_sha256": hashlib.sha256(data).hexdigest(),
                    "image_bytes": len(data),
                }
            )
        manifest.append(records_out)  # only now: the files above exist
        return len(records_out)

    def reload(item: _Item) -> tuple[_Item, np.ndarray | None, str | None]:
        if item.index in cache:
            return item, cache.pop(item.index), None
        return load(item)

    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", desc="generate" if shard[1] == 1 else f"generate {shard[0]}/{shard[1]}",
               disable=not progress, dynamic_ncols=True)

    def drain(limit: int) -> None:
        while len(in_flight) > limit:
            future, count = in_flight.popleft()
            future.result()  # re-raises a writer's error (e.g. disk full)
            summary.generated += count
            bar.update(count)

    def run_batch(entries: list[tuple[_Item, int, int, np.ndarray]]) -> None:
        arrays = [e[3] for e in entries]
        images = synth.synthesize(arrays, [e[2] for e in entries], sources=[e[0].ref.name for e in entries])
        future = writers.submit(write_batch, [e[:3] for e in entries], images, arrays)
        in_flight.append((future, len(entries)))
        drain(2 * max(1, workers))

    buckets: dict[tuple[int, int], list] = {}
    try:
        for item, ids, error in _prefetch(reload, valid, workers, 4 * max(1, workers)):
            if error is not None:  # the file changed since validation
                if on_error == "stop":
                    raise GenerateError(error)
                summary.skipped.append((item.ref.name, error))
                log(f"skipping {error}")
                continue
            bucket = buckets.setdefault(ids.shape, [])
            for k in item.pending:
                bucket.append((item, k, derive_seed(seed, item.ref.key, k), ids))
                if len(bucket) == batch_size:
                    run_batch(bucket)
                    bucket = buckets[ids.shape] = []
        for bucket in buckets.values():
            if bucket:
                run_batch(bucket)
        drain(0)
    finally:
        bar.close()
        writers.shutdown(wait=True)
        manifest.close()

    if shard[1] > 1:
        (out / f"manifest.shard-{shard[0]}-of-{shard[1]}.done").touch()
    summary.merged = _finalize(out, shard)
    summary.manifest = out / MANIFEST if summary.merged else out / manifest_part_name(shard)
    if summary.merged:
        if grid:
            summary.preview = write_preview(out, refs, n, space, out_paths)
        if hf_out:
            summary.hf_dataset = write_hf_dataset(out, out / "hf")
    summary.seconds = time.perf_counter() - started
    return summary


def _finalize(out: Path, shard: tuple[int, int]) -> bool:
    """Merge manifest parts into ``manifest.jsonl`` once every shard of this run is done; True if merged.

    A lock file serializes shards finishing at the same time, so only one merges (and removes the parts).
    """
    markers = [out / f"manifest.shard-{i}-of-{shard[1]}.done" for i in range(shard[1])]
    with open(out / ".merge.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shard[1] > 1 and not all(m.is_file() for m in markers):
            return False
        parts = sorted(out.glob("manifest.shard-*.jsonl"))
        records = read_manifest_records(out)
        lines = [json.dumps(records[key], sort_keys=True) + "\n" for key in sorted(records)]
        atomic_write_text(out / MANIFEST, "".join(lines))
        for path in [*parts, *out.glob("manifest.shard-*.done")]:
            path.unlink(missing_ok=True)
        _clean_temp_files(out, None)  # every shard has finished: no write is in flight
    (out / ".merge.lock").unlink(missing_ok=True)
    return True


def write_preview(
    out: Path,
    refs: Sequence[LabelMapRef],
    n: int,
    space: LabelSpace,
    out_paths: Callable[[LabelMapRef, int], tuple[str, str]],
) -> Path | None:
    """``preview.png``: one row per label map (the first few that are done): colourized labels | samples."""
    from PIL import Image

    rows = []
    for ref in refs:
        images = [out / out_paths(ref, k)[0] for k in range(min(n, PREVIEW_COLS))]
        if not all(p.is_file() for p in images):
            continue
        try:
            labels = space.colorize(space.to_contiguous(ref.read(), source=ref.name))
        except LabelMapError:
            continue
        rows.append([labels] + [np.asarray(Image.open(p).convert("RGB")) for p in images])
        if len(rows) == PREVIEW_ROWS:
            break
    if not rows:
        return None
    gap = 4
    h = max(t.shape[0] for row in rows for t in row)
    w = max(t.shape[1] for row in rows for t in row)
    cols = max(len(row) for row in rows)
    canvas = np.full((len(rows) * (h + gap) + gap, cols * (w + gap) + gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y, x = gap + r * (h + gap), gap + c * (w + gap)
            canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    path = out / "preview.png"
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")
    return path


def write_hf_dataset(out: Path, target: Path) -> Path:
    """A Hugging Face dataset (``image``, ``label``, ``key``, ``k``) of everything in ``out``'s manifest."""
    from dpsims_aug.data.readers import import_datasets

    datasets = import_datasets()

    records = [rec for _, rec in sorted(read_manifest_records(out).items())]
    data = datasets.Dataset.from_dict(
        {
            "image": [str(out / r["image"]) for r in records],
            "label": [str(out / r["annotation"]) for r in records],
            "key": [r["key"] for r in records],
            "k": [r["k"] for r in records],
        }
    )
    data = data.cast_column("image", datasets.Image()).cast_column("label", datasets.Image())
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    data.save_to_disk(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target
