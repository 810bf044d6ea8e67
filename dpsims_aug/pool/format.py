"""The synthetic pool as a format: what ``dpsims-aug generate`` writes and every reader of a pool relies on.

A pool folder holds ``images/<stem>_s<k>.<ext>``, ``annotations/<stem>_s<k>.png``, ``manifest.jsonl`` (one JSON line
per finished image: ``key`` (the source label map), ``k``, ``seed``, ``image``, ``annotation``, hashes; per-shard
parts ``manifest.shard-i-of-N.jsonl`` until merged), ``labels.json`` (the annotations' LabelSpace) and
``dataset_config.py`` (an mmseg ``BaseSegDataset`` for it).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from dpsims_aug.data.mmseg_configs import base_seg_dataset
from dpsims_aug.fileio import atomic_write_text
from dpsims_aug.labels import LabelSpace

MANIFEST = "manifest.jsonl"
IMAGE_FORMATS = {"jpg": ("JPEG", ".jpg"), "png": ("PNG", ".png")}  # --format -> (PIL format, file suffix)


def image_path(stem: str, k: int, suffix: str) -> str:
    """Pool-relative path of synthetic image ``k`` of the label map ``stem``."""
    return f"images/{stem}_s{k}{suffix}"


def label_stem_of(image: str) -> str:
    """The label map stem of a pool image path, the inverse of :func:`image_path`
    (``images/<stem>_s<k>.<ext>`` -> ``<stem>``)."""
    return PurePosixPath(image).relative_to("images").with_suffix("").as_posix().rsplit("_s", 1)[0]


def annotation_path(stem: str, k: int) -> str:
    """Pool-relative path of the annotation of image ``k`` of the label map ``stem``."""
    return f"annotations/{stem}_s{k}.png"


def reduce_zero_label_of(space: LabelSpace) -> bool | None:
    """How mmseg must read annotations holding this space's raw ids: True/False, or None if it cannot."""
    c = space.num_classes
    if space.raw_ids == tuple(range(1, c + 1)) and space.raw_ignore == (0,):
        return True
    if space.raw_ids == tuple(range(c)) and set(space.raw_ignore) <= {space.ignore_index}:
        return False
    return None


def _config_literal(value) -> str:
    """``value`` as mmengine config source: dicts as ``dict(key=...)``, everything else as its repr."""
    if isinstance(value, dict):
        return "dict(" + ", ".join(f"{k}={_config_literal(v)}" for k, v in value.items()) + ")"
    return repr(value)


def dataset_config_text(root: Path, space: LabelSpace, img_suffix: str, reduce_zero_label: bool, *,
                        prefix: str = "dpsims", images: Path | None = None, ann_file: str | None = None,
                        what: str = "the images written by `dpsims-aug generate`", trainable: bool = True) -> str:
    """The mmseg dataset config snippet written as ``dataset_config.py`` in ``root``: ``<prefix>_data_root``,
    ``<prefix>_metainfo`` and ``<prefix>_train_dataset`` (images from ``images``, default ``root/images``;
    annotations from ``root/annotations``; only the samples listed in ``ann_file`` when given). A folder made from
    validation or test label maps (``trainable=False``) gets ``<prefix>_eval_dataset`` instead, so that a training
    config written for a training pool fails by name rather than training on it."""
    cfg = base_seg_dataset(root.resolve(), space, img_path="images" if images is None else str(images.resolve()),
                           seg_map_path="annotations", img_suffix=img_suffix, seg_map_suffix=".png",
                           reduce_zero_label=reduce_zero_label, ann_file=ann_file)
    meta = cfg.pop("metainfo")
    names = [repr(c) for c in meta["classes"]]
    classes = ",\n".join("        " + ", ".join(names[i : i + 6]) for i in range(0, len(names), 6))
    colours = [f"[{r}, {g}, {b}]" for r, g, b in meta["palette"]]
    palette = ",\n".join("        " + ", ".join(colours[i : i + 6]) for i in range(0, len(colours), 6))
    data_root = cfg.pop("data_root")
    dataset_type = cfg.pop("type")
    fields = "".join(f"    {key}={_config_literal(value)},\n" for key, value in cfg.items())
    if not trainable:
        return f'''# mmseg dataset config for {what} (label space {space.name!r}).
# MADE FROM VALIDATION OR TEST LABEL MAPS (source_split.json): for evaluation only. Never train on it: a segmenter
# that has seen images of the validation layouts reports an inflated mIoU.
{prefix}_data_root = {data_root!r}
{prefix}_eval_dataset = dict(
    type={dataset_type!r},
    data_root={prefix}_data_root,
    metainfo=dict(classes={tuple(meta["classes"])!r}, palette={[list(c) for c in meta["palette"]]!r}),
{fields}    pipeline=[],
)
'''
    return f'''# mmseg dataset config for {what} (label space {space.name!r}).
# Use it with `_base_ = ['{root.resolve() / "dataset_config.py"}']` (or copy it), set the pipeline to your training
# pipeline and mix it with your real data at a chosen share of synthetic samples (SyntheticMixDataset is registered
# by `custom_imports = dict(imports=['dpsims_aug.mm'])`), e.g.
#   train_dataloader = dict(dataset=dict(type='SyntheticMixDataset', real=real_train_dataset,
#                                        synthetic={prefix}_train_dataset, synthetic_share=0.25))
{prefix}_data_root = {data_root!r}
{prefix}_metainfo = dict(
    classes=(
{classes},
    ),
    palette=[
{palette},
    ],
)
{prefix}_train_dataset = dict(
    type={dataset_type!r},
    data_root={prefix}_data_root,
    metainfo={prefix}_metainfo,
{fields}    pipeline=[],
)
'''


def manifest_part_name(shard: tuple[int, int]) -> str:
    """The manifest file a shard ``(i, N)`` appends to (``manifest.jsonl`` when unsharded)."""
    return MANIFEST if shard[1] == 1 else f"manifest.shard-{shard[0]}-of-{shard[1]}.jsonl"


def shard_done_marker(out: Path, shard: tuple[int, int]) -> Path:
    """The file a shard ``(i, N)`` creates when all its images are written."""
    return out / f"manifest.shard-{shard[0]}-of-{shard[1]}.done"


def manifest_files(out: str | os.PathLike) -> list[Path]:
    """The merged manifest and any shard parts that exist in the pool ``out``."""
    out = Path(out)
    return [p for p in [out / MANIFEST, *sorted(out.glob("manifest.shard-*.jsonl"))] if p.is_file()]


def read_manifest_records(out: str | os.PathLike) -> dict[tuple[str, int], dict]:
    """Records of every manifest file in ``out`` (merged and per-shard parts), keyed by (key, k).

    A torn last line (a run killed while appending) is ignored: that image is simply made again.
    """
    records: dict[tuple[str, int], dict] = {}
    for path in manifest_files(out):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
                records[(rec["key"], int(rec["k"]))] = rec
            except (ValueError, KeyError, TypeError):
                continue
    return records


class ManifestWriter:
    """Appends JSON lines durably (flush + fsync) from several writer threads; a torn last line left by a killed
    run is ended first, so it stays unreadable instead of corrupting the next record."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._file = open(path, "ab")  # noqa: SIM115 (closed in close())
        if self._file.tell() > 0:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    self._file.write(b"\n")

    def append(self, records: Sequence[dict]) -> None:
        data = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records)
        with self._lock:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def clean_temp_files(out: Path, owned: set[str] | None) -> None:
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


def merge_shards(out: Path, shard: tuple[int, int]) -> bool:
    """Merge manifest parts into ``manifest.jsonl`` once every shard of this run is done; True if merged.

    A lock file serializes shards finishing at the same time, so only one merges (and removes the parts).
    """
    markers = [shard_done_marker(out, (i, shard[1])) for i in range(shard[1])]
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
        clean_temp_files(out, None)  # every shard has finished: no write is in flight
    (out / ".merge.lock").unlink(missing_ok=True)
    return True


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
