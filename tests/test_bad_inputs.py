"""Bad input, across generate, evaluate, the readers, filter/layouts, DPSIMSAugment and DPSIMSPoolAugment: every case
is refused with an error that names the file and says what is wrong, and nothing written before is lost."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_generator_checkpoint
from PIL import Image

from dpsims_aug.checkpoint import CheckpointError
from dpsims_aug.data.readers import find_label_maps, find_pairs, read_rgb
from dpsims_aug.data.writers import write_dataset
from dpsims_aug.label_maps import read_label_map
from dpsims_aug.labels import LabelMapError
from dpsims_aug.layouts import write_layouts
from dpsims_aug.pool.writer import GenerateError, generate


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    tiny_generator_checkpoint(root / "g.safetensors")
    write_dataset(root / "data", "ade20k", n_train=2, n_val=2, size=(32, 32))
    return root


def _maps(folder: Path, count: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((32, 32), 1 + i, np.uint8)).save(folder / f"map_{i}.png")
    return folder


def _bomb(path: Path) -> None:
    Image.fromarray(np.ones((8, 8), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"IHDR")
    data[at + 4 : at + 12] = struct.pack(">II", 60000, 60000)
    data[at + 17 : at + 21] = struct.pack(">I", zlib.crc32(bytes(data[at : at + 17])))
    path.write_bytes(bytes(data))


# Each case makes one bad file in a folder of good label maps: (name, how to make it, words the error must hold).
BAD_MAPS = {
    "rgb.png": (lambda p: Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(p), "RGB colour image"),
    "truncated.png": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10), "unreadable or truncated"),
    "empty.png": (lambda p: p.write_bytes(b""), "unreadable or truncated"),
    "not_png.png": (lambda p: p.write_text("hello"), "unreadable or truncated"),
    "ids.png": (lambda p: Image.fromarray(np.full((32, 32), 77, np.uint8)).save(p), "{77}"),
    "float.png": (lambda p: Image.fromarray(np.zeros((32, 32), np.float32), mode="F").save(p, format="TIFF"),
                  "floating-point"),
    "bomb.png": (_bomb, "pixels"),
    "gone.png": (lambda p: p.symlink_to(p.parent / "no_such_target.png"), "not found"),
}


@pytest.mark.parametrize("name", sorted(BAD_MAPS))
def test_generate_names_the_bad_map_keeps_what_exists_and_skips_it_on_request(base, tmp_path, name):
    labels = _maps(tmp_path / "labels")
    out = tmp_path / "out"
    generate(labels, n=1, out=out, checkpoint=base / "g.safetensors", batch_size=2, progress=False)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*") if p.is_file()}
    make, words = BAD_MAPS[name]
    make(labels / name)
    with pytest.raises(GenerateError) as err:
        generate(labels, n=1, out=out, checkpoint=base / "g.safetensors", batch_size=2, progress=False)
    assert name in str(err.value) and words in str(err.value)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*") if p.is_file()} == before
    summary = generate(labels, n=1, out=out, checkpoint=base / "g.safetensors", batch_size=2, progress=False,
                       on_error="skip")
    assert [Path(n).name for n, _ in summary.skipped] == [name] and words in summary.skipped[0][1]
    assert all(p.read_bytes() and hashlib.sha256(p.read_bytes()).hexdigest() == h for p, h in before.items()
               if p.name != "manifest.jsonl")


def test_generate_refuses_a_missing_or_foreign_checkpoint(base, tmp_path):
    labels = _maps(tmp_path / "labels")
    with pytest.raises(CheckpointError, match="nope.safetensors.*not found"):
        generate(labels, n=1, out=tmp_path / "o", checkpoint=tmp_path / "nope.safetensors", progress=False)
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(64))
    with pytest.raises(CheckpointError, match="junk.safetensors.*not a safetensors checkpoint"):
        generate(labels, n=1, out=tmp_path / "o", checkpoint=tmp_path / "junk.safetensors", progress=False)
    assert not (tmp_path / "o" / "images").exists()


def test_readers_name_unpaired_files_and_bad_images(base, tmp_path):
    root = tmp_path / "d"
    write_dataset(root, "ade20k", n_train=2, n_val=1, size=(32, 32))
    (root / "images" / "training" / "scene_000001.jpg").unlink()
    with pytest.raises(LabelMapError, match="scene_000001"):
        find_pairs(root, dataset_format="ade20k", split="train")
    (root / "images" / "training" / "extra.jpg").write_bytes(b"\xff\xd8\xff")  # an image without a label map
    (root / "images" / "training" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(ValueError, match=r"broken\.jpg.*unreadable or truncated"):
        read_rgb(root / "images" / "training" / "broken.jpg")
    with pytest.raises(LabelMapError, match="nowhere.*not a folder|nowhere"):
        find_label_maps(tmp_path / "nowhere")
    with pytest.raises(LabelMapError, match="no_such.png.*file not found"):
        read_label_map(tmp_path / "no_such.png")


def test_evaluate_names_missing_data_and_segmenter(base, tmp_path):
    from dpsims_aug.metrics.evaluate import evaluate

    with pytest.raises((LabelMapError, FileNotFoundError, ValueError), match="no_data"):
        evaluate(checkpoint=base / "g.safetensors", data=tmp_path / "no_data", split="val", progress=False,
                 cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match=r"seg\.py"):
        evaluate(checkpoint=base / "g.safetensors", data=base / "data", split="val", progress=False,
                 segmenter_config=tmp_path / "seg.py", segmenter_checkpoint=tmp_path / "missing.pth",
                 cache_dir=tmp_path / "cache")


def test_layouts_names_unreadable_maps_and_keeps_what_was_written(base, tmp_path):
    labels = _maps(tmp_path / "labels")
    write_layouts(labels, 2, tmp_path / "out", dataset_format="bare", progress=False, log=lambda m: None)
    kept = (tmp_path / "out" / "map_0_l0.png").read_bytes()
    (labels / "map_1.png").write_bytes(b"junk")
    (tmp_path / "out" / "map_1_l1.png").unlink()
    with pytest.raises(LabelMapError, match=r"map_1\.png.*unreadable"):
        write_layouts(labels, 2, tmp_path / "out", dataset_format="bare", progress=False, log=lambda m: None)
    assert (tmp_path / "out" / "map_0_l0.png").read_bytes() == kept


def test_transform_names_bad_checkpoint_pool_and_ids(base, tmp_path):
    pytest.importorskip("mmcv")
    from dpsims_aug.mm.transforms import DPSIMSAugment, DPSIMSPoolAugment

    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        DPSIMSAugment(checkpoint=tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="no manifest.jsonl"):
        DPSIMSPoolAugment(pool=tmp_path)
    online = DPSIMSAugment(checkpoint=base / "g.safetensors", prob=1.0)
    bad = dict(img=np.zeros((32, 32, 3), np.uint8), gt_seg_map=np.full((32, 32), 42, np.uint8),
               seg_map_path="data/bad_ids.png", reduce_zero_label=False)
    with pytest.raises(LabelMapError, match=r"bad_ids\.png.*\[42\]"):
        online(bad)
    pool = tmp_path / "pool"
    generate(base / "data", n=1, out=pool, checkpoint=base / "g.safetensors", split="train", progress=False)
    strict = DPSIMSPoolAugment(pool=pool, prob=1.0, on_missing="error")
    with pytest.raises(KeyError, match="unknown_map.png"):
        strict(dict(img=np.zeros((32, 32, 3), np.uint8), gt_seg_map=np.zeros((32, 32), np.uint8),
                    seg_map_path=str(tmp_path / "unknown_map.png")))
    resized = dict(img=np.zeros((16, 16, 3), np.uint8), gt_seg_map=np.zeros((16, 16), np.uint8),
                   seg_map_path=str(base / "data" / "annotations" / "training" / "scene_000000.png"))
    with pytest.raises(ValueError, match="scene_000000.png is 16x16 here"):
        strict(resized)
