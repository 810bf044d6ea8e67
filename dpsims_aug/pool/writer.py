"""Writing a synthetic pool: ``dpsims-aug generate``, N synthetic images per real label map.

Output folder (mmseg-ready; the format is :mod:`dpsims_aug.pool.format`)::

    images/<stem>_s<k>.jpg          synthetic image k of label map <stem>
    annotations/<stem>_s<k>.png     that label map, unchanged (a hard link to the source where possible)
    manifest.jsonl                  one JSON line per finished image (key, k, seed, checkpoint and image hashes, paths)
    dataset_config.py               mmseg dataset config (BaseSegDataset) for this folder
    labels.json                     the LabelSpace of the annotations
    source_split.json               the split(s) of the source label maps (a pool of validation maps is refused for
                                    training by the transform, SyntheticMixDataset and filter)
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

Instance edges: a generator trained with ``use_instance_edges`` gets each label map's instance boundaries, read from
its instance map (``LabelMapRef.instance_path``: Cityscapes ``*_gtFine_instanceIds.png``, COCO panoptic PNGs, an
``instances/`` folder or ``--instances DIR``; :mod:`dpsims_aug.instance_edges`). Label maps without one are refused
by name before anything is written, unless ``edges='from-labels'`` (``--edges from-labels``) asks for the label
maps' class boundaries instead. The manifest records which (``edges``), and a resume with the other is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
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
from dpsims_aug.data.splits import TRAIN, UNKNOWN, is_trainable, record_splits, recorded_splits
from dpsims_aug.fileio import atomic_link, atomic_write_bytes, atomic_write_text
from dpsims_aug.instance_edges import check_edge_mode, missing_instance_map, read_instance_edges
from dpsims_aug.label_maps import encode_label_png
from dpsims_aug.labels import LabelMapError
from dpsims_aug.locking import output_lock
from dpsims_aug.pool.format import (
    IMAGE_FORMATS,
    MANIFEST,
    ManifestWriter,
    annotation_path,
    clean_temp_files,
    dataset_config_text,
    image_path,
    manifest_part_name,
    merge_shards,
    read_manifest_records,
    reduce_zero_label_of,
    shard_done_marker,
    write_hf_dataset,
)
from dpsims_aug.pool.preview import write_preview
from dpsims_aug.synthesis import (
    DEFAULT_MAX_BATCH_PIXELS,
    Synthesizer,
    default_checkpoint_path,
    derive_seed,
    resolve_device,
)

# What a run without instance maps is told (after "<label map>: has no instance map (expected ...)").
NO_INSTANCE_HINT = ("the generator was trained with instance edges; give the folder of instance maps with "
                    "--instances DIR, or pass --edges from-labels to use the label maps' class boundaries instead "
                    "(touching objects of one class then lose the boundary between them)")
JPEG_QUALITY = 95  # fixed: the encoder is deterministic at a fixed quality, so resumed runs are byte-identical
CACHE_BYTES = 1 << 30  # decoded label maps kept from the validation pass (avoids decoding them twice)


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
    splits: list[str] = field(default_factory=list)  # the splits of the label maps read (see source_split.json)

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


def generate(
    labels: str | os.PathLike | None = None,
    n: int = 4,
    out: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    dataset_format: str = "auto",
    split: str | None = TRAIN,
    train_ids: bool = False,
    hf: str | os.PathLike | None = None,
    hf_split: str = "train",
    hf_column: str = "label",
    hf_id_column: str | None = None,
    batch_size: int = 8,
    max_batch_pixels: int | None = DEFAULT_MAX_BATCH_PIXELS,
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
    edges: str = "instances",
    instance_dir: str | os.PathLike | None = None,
) -> GenerateSummary:
    """Write ``n`` synthetic images per label map (see the module docstring for the output folder and guarantees).

    Args:
        labels: Dataset root or folder of label maps (default: the bundled sample label maps).
        n: Images per label map.
        out: Output folder (default: ``<labels>_dpsims`` next to ``labels``).
        checkpoint: Generator file (default: the bundled model trained on the embedded dataset).
        dataset_format, split, train_ids: How to find label maps (see :func:`~dpsims_aug.data.readers.find_label_maps`):
            the training split unless told otherwise (``'all'`` reads every split; such a pool is refused for
            training).
        hf, hf_split, hf_column, hf_id_column: Read label maps from a Hugging Face dataset instead.
        batch_size: Images per forward (part of the determinism contract, see :mod:`dpsims_aug.synthesis`).
        max_batch_pixels: At most this many label-map pixels per forward: big maps run fewer images at a time
            (``None``: always ``batch_size``; also part of the contract).
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
        edges: For a generator with instance edges: ``'instances'`` (default: from each label map's instance map;
            maps without one are refused, or skipped with ``on_error='skip'``) or ``'from-labels'`` (the label
            map's class boundaries). Ignored for other generators.
        instance_dir: A folder of instance maps, looked at before the naming conventions
            (:func:`dpsims_aug.instance_edges.instance_map_candidates`).

    Raises:
        GenerateError, LabelMapError, CheckpointError: with a message naming the problem and the files.
    """
    started = time.perf_counter()
    _check_generate_options(n, on_error, image_format, edges)
    input_root, refs, default_out, source = _label_map_source(
        labels, dataset_format, split, train_ids, instance_dir, hf, hf_split, hf_column, hf_id_column)
    writer = PoolWriter(
        refs, Path(out) if out is not None else default_out, n=n, seed=seed, image_format=image_format,
        shard=resolve_shard(shard), on_error=on_error, workers=workers, progress=progress,
        log=log or (lambda msg: print(msg, file=sys.stderr)), source=source, edges=edges)
    writer.check_output_names(input_root)
    _run_stages(writer, checkpoint, device, dtype, (batch_size, max_batch_pixels), dry_run=dry_run, grid=grid,
                hf_out=hf_out)
    writer.summary.seconds = time.perf_counter() - started
    return writer.summary


def _check_generate_options(n: int, on_error: str, image_format: str, edges: str) -> None:
    """Refuse bad options before any label map or model is read."""
    if n < 1:
        raise GenerateError(f"--n must be >= 1, got {n}")
    if on_error not in ("stop", "skip"):
        raise GenerateError(f"--on-error must be 'stop' or 'skip', got {on_error!r}")
    if image_format not in IMAGE_FORMATS:
        raise GenerateError(f"--format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
    try:
        check_edge_mode(edges, "--edges")
    except ValueError as err:
        raise GenerateError(str(err)) from None


def _label_map_source(
    labels: str | os.PathLike | None,
    dataset_format: str,
    split: str | None,
    train_ids: bool,
    instance_dir: str | os.PathLike | None,
    hf: str | os.PathLike | None,
    hf_split: str,
    hf_column: str,
    hf_id_column: str | None,
) -> tuple[Path | None, list[LabelMapRef], Path, str | os.PathLike | None]:
    """(input folder or None, label maps, default output folder, source recorded with the splits), from the Hugging
    Face dataset ``hf`` when given, else from the folder ``labels``."""
    if hf is not None:
        refs = hf_label_maps(hf, split=hf_split, label_column=hf_column, id_column=hf_id_column)
        input_root = Path(hf) if Path(hf).is_dir() else None
        default_out = Path.cwd() / f"{Path(str(hf)).name}_dpsims"
        return input_root, refs, default_out, hf
    input_root, refs, default_out = _find_label_maps(labels, dataset_format, split, train_ids, instance_dir)
    return input_root, refs, default_out, input_root


def _run_stages(writer: PoolWriter, checkpoint: str | os.PathLike | None, device: str, dtype: str,
                batching: tuple[int, int | None], *, dry_run: bool, grid: bool, hf_out: bool) -> None:
    """The :class:`PoolWriter` stages in order; a dry run stops after :meth:`~PoolWriter.plan`."""
    # One writer per folder (per shard): a second run would delete this run's temporary files as leftovers.
    with contextlib.nullcontext() if dry_run else output_lock(writer.out, "dpsims-aug generate", writer.shard):
        writer.check_splits()
        writer.load_model(checkpoint, resolve_device(device), dtype, *batching)
        writer.plan()
        writer.summary.dry_run = dry_run
        if not dry_run:
            writer.check_instance_maps()
            writer.prepare_output()
            writer.validate_label_maps()
            writer.synthesize()
            writer.finish(grid=grid, hf_out=hf_out)


def _find_label_maps(labels: str | os.PathLike | None, dataset_format: str, split: str | None, train_ids: bool,
                     instance_dir: str | os.PathLike | None = None) -> tuple[Path, list[LabelMapRef], Path]:
    """(input folder, its label maps, the default output folder) for ``--labels`` (default: the bundled samples)."""
    bundled = labels is None
    folder = Path(labels) if labels is not None else default_sample_labels_path()
    if not folder.is_dir():
        if bundled:
            raise GenerateError(
                f"no --labels given and the bundled sample label maps are not installed ({folder}); "
                "pass --labels DIR (e.g. a folder written by `dpsims-aug dataset`)"
            )
        raise LabelMapError(folder, "is not a folder")
    refs = find_label_maps(folder, dataset_format=dataset_format, split=split, train_ids=train_ids,
                           instance_dir=instance_dir)
    if bundled:  # the bundled demo maps belong to no user's dataset: no validation split to protect
        refs = [dataclasses.replace(ref, split=TRAIN) for ref in refs]
    default_out = Path.cwd() / "sample_labels_dpsims" if bundled else folder.parent / f"{folder.name}_dpsims"
    return folder, refs, default_out


@dataclass
class _Item:
    """One label map of this shard and the image indices ``k`` still to make for it."""

    index: int  # position in the full (unsharded) list
    ref: LabelMapRef
    pending: list[int]


class PoolWriter:
    """One ``generate`` run over ``refs`` into the pool ``out``. :func:`generate` calls the stages in this order:

    1. :meth:`check_output_names`: every label map gets a distinct output name inside ``out``;
    2. :meth:`load_model`: the generator, and how annotations are stored for its label space;
    3. :meth:`plan`: what the manifest says is done (refusing a pool made with another checkpoint, seed, format or
       edge source);
    3b. :meth:`check_instance_maps`: a generator with instance edges needs every label map's instance map;
    4. :meth:`prepare_output`: folders, leftovers of killed writers, ``labels.json``, ``dataset_config.py``;
    5. :meth:`validate_label_maps`: every label map still needed is read once before anything is generated;
    6. :meth:`synthesize`: reader threads -> batches per size -> model -> writer threads + durable manifest lines;
    7. :meth:`finish`: the shard's done marker, the merge of the manifest parts, preview and HF export.
    """

    def __init__(self, refs: Sequence[LabelMapRef], out: Path, *, n: int, seed: int, image_format: str,
                 shard: tuple[int, int], on_error: str, workers: int, progress: bool,
                 log: Callable[[str], None], source: str | os.PathLike | None = None,
                 edges: str = "instances") -> None:
        self.refs, self.out, self.n, self.seed, self.source = list(refs), out, n, seed, source
        self.edges = check_edge_mode(edges, "edges")
        self.use_instances = False  # set by load_model: the generator takes edges and they come from instance maps
        self.splits = sorted({ref.split for ref in self.refs})
        self.pil_format, self.img_suffix = IMAGE_FORMATS[image_format]
        self.shard, self.on_error, self.workers, self.progress, self.log = shard, on_error, workers, progress, log
        self.summary = GenerateSummary(out=out, shard=shard, splits=self.splits)
        self._mine: list[_Item] = []  # this shard's label maps
        self.items: list[_Item] = []  # those with something still to make
        # label maps (and instance edges) decoded by validate_label_maps, by index
        self._decoded: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def paths(self, ref: LabelMapRef, k: int) -> tuple[str, str]:
        """Pool-relative (image, annotation) paths of image ``k`` of ``ref``."""
        return image_path(ref.stem, k, self.img_suffix), annotation_path(ref.stem, k)

    # -------------------------------------------------------------------------------------------- stages

    def check_output_names(self, input_root: Path | None) -> None:
        """Refuse an output folder inside the input, names that would leave ``out``, and two maps with one name."""
        if input_root is not None and self.out.resolve().is_relative_to(input_root.resolve()):
            raise GenerateError(
                f"--out {self.out} lies inside the input folder {input_root}; choose a folder outside it")
        stems: dict[str, str] = {}
        for ref in self.refs:
            stem = _safe_stem(ref.stem, ref.name)
            if stem in stems:
                raise GenerateError(f"{ref.name} and {stems[stem]} map to the same output name {stem!r}")
            stems[stem] = ref.name

    def check_splits(self) -> None:
        """Refuse to add label maps of other splits to an existing pool (a training pool must stay one); say when
        the input has no split information."""
        recorded = recorded_splits(self.out) if self.out.is_dir() else None
        if recorded is not None and recorded != self.splits:
            raise GenerateError(
                f"{self.out} holds images of label maps of the split(s) {', '.join(recorded)}, but this run reads "
                f"split(s) {', '.join(self.splits)}; use another --out (one pool per split)")
        if UNKNOWN in self.splits:
            self.log(f"note: {self.source} has no split folders, split lists or split record; its label maps are "
                     "used as they are: make sure no validation or test map is among them")
        if not is_trainable(self.splits):
            self.log(f"note: this pool is made from {', '.join(self.splits)} label maps: for evaluation only; "
                     "the transform, SyntheticMixDataset and filter refuse it for training")

    def load_model(self, checkpoint: str | os.PathLike | None, device: str, dtype: str, batch_size: int,
                   max_batch_pixels: int | None = DEFAULT_MAX_BATCH_PIXELS) -> None:
        """The generator; annotations keep the source's raw ids when mmseg can read them (``reduce_zero_label``),
        else they are written as contiguous ids."""
        if checkpoint is None:
            checkpoint = default_checkpoint_path()
            if not checkpoint.is_file():
                raise GenerateError(
                    f"no --checkpoint given and the bundled default generator is not installed ({checkpoint}); "
                    "pass --checkpoint FILE (a generator exported by train_gan)"
                )
        self.synth = Synthesizer.from_checkpoint(checkpoint, device=device, dtype=dtype, batch_size=batch_size,
                                                 max_batch_pixels=max_batch_pixels)
        self.space = self.synth.label_space
        self.reduce_zero = reduce_zero_label_of(self.space)
        self.link_raw = self.reduce_zero is not None
        self.ann_space = self.space if self.link_raw else self.space.contiguous()
        self.edge_source = self.edges if self.synth.config.use_instance_edges else None  # recorded in the manifest
        self.use_instances = self.edge_source == "instances"

    def plan(self) -> None:
        """Read what is done (any shard, any earlier run) and list what this shard still has to make."""
        ckpt_sha = self.synth.checkpoint_sha256
        records = read_manifest_records(self.out) if self.out.is_dir() else {}
        by_key = {ref.key: ref for ref in self.refs}
        for (key, k), rec in records.items():
            if rec.get("checkpoint_sha256") != ckpt_sha:
                raise GenerateError(
                    f"{self.out} holds images made with another checkpoint (sha256 {rec.get('checkpoint_sha256')}); "
                    "use another --out, or the same --checkpoint to resume"
                )
            if key in by_key and rec.get("seed") != derive_seed(self.seed, key, k):
                raise GenerateError(
                    f"{self.out} holds images made with another --seed; use another --out or the same seed")
            if self.edge_source is not None and rec.get("edges", "from-labels") != self.edge_source:
                raise GenerateError(
                    f"{self.out} holds images made with --edges {rec.get('edges', 'from-labels')}, but this run uses "
                    f"--edges {self.edge_source}; use another --out, or the same --edges to resume")
            if key in by_key and rec.get("image") != self.paths(by_key[key], k)[0]:
                raise GenerateError(
                    f"{self.out} holds {rec.get('image')} for {key}, but this run would write "
                    f"{self.paths(by_key[key], k)[0]} (another --format or --dataset-format?); use another --out, or "
                    "the same options to resume"
                )

        def is_done(ref: LabelMapRef, k: int) -> bool:
            rec = records.get((ref.key, k))
            if rec is None:
                return False
            image, ann = self.out / str(rec.get("image")), self.out / str(rec.get("annotation"))
            return image.is_file() and ann.is_file() and image.stat().st_size == rec.get("image_bytes")

        i, count = self.shard
        mine = [_Item(index, ref, []) for index, ref in enumerate(self.refs) if index % count == i]
        for item in mine:
            item.pending = [k for k in range(self.n) if not is_done(item.ref, k)]
            self.summary.already_done += self.n - len(item.pending)
        self.summary.label_maps, self.summary.images_total = len(mine), len(mine) * self.n
        self._mine = mine
        self.items = [item for item in mine if item.pending]

    def check_instance_maps(self) -> None:
        """With instance edges from instance maps: refuse the run (naming the label maps and the paths looked for)
        before anything is written when maps still to make have no instance map, or skip them
        (``on_error='skip'``)."""
        if not self.use_instances:
            return
        missing = [item for item in self.items if item.ref.instance_path is None]
        if not missing:
            return
        errors = [str(missing_instance_map(item.ref.name, item.ref.expected_instance_path, "")) for item in missing]
        if self.on_error == "stop":
            shown = "\n".join(f"  {msg}" for msg in errors[:20])
            more = f"\n  ... ({len(errors)} in all)" if len(errors) > 20 else ""
            raise GenerateError(f"{len(errors)} label map(s) have no instance map; nothing was generated: "
                                f"{NO_INSTANCE_HINT} (or --on-error skip to skip them):\n{shown}{more}")
        for item, msg in zip(missing, errors):
            self.summary.skipped.append((item.ref.name, msg))
            self.log(f"skipping {msg}")
        gone = {id(item) for item in missing}
        self.items = [item for item in self.items if id(item) not in gone]

    def prepare_output(self) -> None:
        """Create ``out``, remove this shard's leftovers of killed writers, write the pool's shared files."""
        self.out.mkdir(parents=True, exist_ok=True)
        owned = {p for item in self._mine for k in range(self.n) for p in self.paths(item.ref, k)}
        clean_temp_files(self.out, owned if self.shard[1] > 1 else None)
        atomic_write_text(self.out / "labels.json", self.ann_space.to_json())
        record_splits(self.out, self.splits, self.source)
        atomic_write_text(
            self.out / "dataset_config.py",
            dataset_config_text(self.out, self.ann_space, self.img_suffix,
                                self.reduce_zero if self.link_raw else False, trainable=is_trainable(self.splits)),
        )

    def validate_label_maps(self) -> None:
        """Read every label map still needed (decoded maps are kept, up to :data:`CACHE_BYTES`). Bad maps stop the
        run before anything is generated, or are skipped and listed (``on_error='skip'``)."""
        bad: list[tuple[str, str]] = []
        valid: list[_Item] = []
        cached_bytes = 0
        for item, decoded, error in _prefetch(self._load, self.items, self.workers, 4 * max(1, self.workers)):
            if error is not None:
                bad.append((item.ref.name, error))
                continue
            valid.append(item)
            size = sum(a.nbytes for a in decoded if a is not None)
            if cached_bytes + size <= CACHE_BYTES:
                self._decoded[item.index] = decoded
                cached_bytes += size
        if bad and self.on_error == "stop":
            shown = "\n".join(f"  {msg}" for _, msg in bad[:20])
            more = f"\n  ... ({len(bad)} in all)" if len(bad) > 20 else ""
            raise GenerateError(f"{len(bad)} label map(s) cannot be used; nothing was generated (use --on-error "
                                f"skip to skip them):\n{shown}{more}")
        self.summary.skipped.extend(bad)
        for name, msg in bad:
            self.log(f"skipping {msg}" if msg.startswith(name) else f"skipping {name}: {msg}")
        self.items = valid

    def synthesize(self) -> None:
        """Make every pending image: maps batched by size (``Synthesizer.batch_size_for`` images per forward),
        writes in threads while the model runs; a manifest line is appended only once its files exist."""
        from tqdm import tqdm

        total = sum(len(item.pending) for item in self.items)
        desc = "generate" if self.shard[1] == 1 else f"generate {self.shard[0]}/{self.shard[1]}"
        bar = tqdm(total=total, unit="img", desc=desc, disable=not self.progress, dynamic_ncols=True)
        manifest = ManifestWriter(self.out / manifest_part_name(self.shard))
        writers = ThreadPoolExecutor(max_workers=max(1, self.workers), thread_name_prefix="dpsims-write")
        in_flight: deque[tuple[Future, int]] = deque()

        def drain(limit: int) -> None:
            while len(in_flight) > limit:
                future, count = in_flight.popleft()
                future.result()  # re-raises a writer's error (e.g. disk full)
                self.summary.generated += count
                bar.update(count)

        def run_batch(entries: list[tuple[_Item, int, int, np.ndarray, np.ndarray | None]]) -> None:
            arrays = [e[3] for e in entries]
            edges = None
            if self.use_instances:  # else the Synthesizer uses the label maps' class boundaries (from-labels)
                import torch

                edges = torch.from_numpy(np.stack([e[4] for e in entries])).float()[:, None]
            images = self.synth.synthesize(arrays, [e[2] for e in entries], sources=[e[0].ref.name for e in entries],
                                           edges=edges)
            future = writers.submit(self._write_batch, manifest, [e[:3] for e in entries], images, arrays)
            in_flight.append((future, len(entries)))
            drain(2 * max(1, self.workers))

        buckets: dict[tuple[int, int], list] = {}
        try:
            for item, decoded, error in _prefetch(self._reload, self.items, self.workers, 4 * max(1, self.workers)):
                if error is not None:  # the file changed since validation
                    if self.on_error == "stop":
                        raise GenerateError(error)
                    self.summary.skipped.append((item.ref.name, error))
                    self.log(f"skipping {error}")
                    continue
                ids, edges = decoded
                bucket = buckets.setdefault(ids.shape, [])
                for k in item.pending:
                    bucket.append((item, k, derive_seed(self.seed, item.ref.key, k), ids, edges))
                    if len(bucket) == self.synth.batch_size_for(*ids.shape):
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

    def finish(self, grid: bool, hf_out: bool) -> None:
        """Mark this shard done; the last shard merges the manifest and writes the preview / HF dataset."""
        if self.shard[1] > 1:
            shard_done_marker(self.out, self.shard).touch()
        summary = self.summary
        summary.merged = merge_shards(self.out, self.shard)
        summary.manifest = self.out / (MANIFEST if summary.merged else manifest_part_name(self.shard))
        if summary.merged:
            if grid:
                summary.preview = write_preview(self.out, self.refs, self.n, self.space, self.img_suffix)
            if hf_out:
                summary.hf_dataset = write_hf_dataset(self.out, self.out / "hf")

    # -------------------------------------------------------------------------------------------- helpers

    def _load(self, item: _Item) -> tuple[_Item, tuple[np.ndarray, np.ndarray | None] | None, str | None]:
        """(item, (contiguous ids, instance edges as uint8 or None), None), or (item, None, error)."""
        try:
            # to_contiguous refuses unknown raw ids (naming them and the file), so ids fit the model afterwards.
            ids = self.space.to_contiguous(item.ref.read(), source=item.ref.name)
            edges = None
            if self.use_instances:
                if item.ref.instance_path is None:
                    raise missing_instance_map(item.ref.name, item.ref.expected_instance_path, NO_INSTANCE_HINT)
                edges = read_instance_edges(item.ref.instance_path, ids.shape, item.ref.name).astype(np.uint8)
            return item, (ids, edges), None
        except LabelMapError as err:
            return item, None, str(err)
        except (OSError, ValueError) as err:  # e.g. undecodable image inside a HF dataset
            return item, None, f"{item.ref.name}: unreadable label map ({err})"

    def _reload(self, item: _Item) -> tuple[_Item, tuple[np.ndarray, np.ndarray | None] | None, str | None]:
        if item.index in self._decoded:
            return item, self._decoded.pop(item.index), None
        return self._load(item)

    def _write_batch(self, manifest: ManifestWriter, entries: list[tuple[_Item, int, int]], images: np.ndarray,
                     label_arrays: list[np.ndarray]) -> None:
        records = []
        for (item, k, seed), rgb, ids in zip(entries, images, label_arrays):
            image_rel, ann_rel = self.paths(item.ref, k)
            data = _encode_image(rgb, self.pil_format)
            atomic_write_bytes(self.out / image_rel, data)
            if self.link_raw and item.ref.path is not None:
                atomic_link(self.out / ann_rel, item.ref.path)
            else:
                atomic_write_bytes(self.out / ann_rel, encode_label_png(self.space.to_raw(ids) if self.link_raw
                                                                        else ids))
            record = {
                "key": item.ref.key, "k": k, "seed": seed, "checkpoint_sha256": self.synth.checkpoint_sha256,
                "image": image_rel, "annotation": ann_rel, "image_sha256": hashlib.sha256(data).hexdigest(),
                "image_bytes": len(data),
            }
            if self.edge_source is not None:  # a generator with instance edges: where they came from
                record["edges"] = self.edge_source
            records.append(record)
        manifest.append(records)  # only now: the files above exist


def _safe_stem(stem: str, name: str) -> str:
    """Refuse output names that would leave the output folder (absolute, ``..``, backslashes, empty)."""
    path = PurePosixPath(stem)
    if not stem or "\\" in stem or path.is_absolute() or any(p in ("..", "") for p in stem.split("/")):
        raise GenerateError(
            f"{name}: its key {stem!r} would put outputs outside the output folder (absolute or '..' path); "
            "rename it or give the dataset another id column"
        )
    return path.as_posix()


def _encode_image(rgb: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = BytesIO()
    if fmt == "JPEG":
        Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


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
