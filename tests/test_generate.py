"""`dpsims-aug generate`: output folder, manifest, resume after kill -9, shards, bad inputs, mmseg config, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_generator_checkpoint

from dpsims_aug.checkpoint import file_sha256
from dpsims_aug.cli import main
from dpsims_aug.label_maps import read_label_map, write_label_map
from dpsims_aug.labels import embedded_label_space
from dpsims_aug.pool import writer as gen
from dpsims_aug.pool.format import read_manifest_records
from dpsims_aug.pool.writer import GenerateError, generate, resolve_shard
from dpsims_aug.synthesis import derive_seed, resolve_device

SPACE = embedded_label_space()
REPO = Path(__file__).resolve().parents[1]
# Slows every batch down so a subprocess can be killed while it is writing.
SLOW_MAIN = """
import sys, time
from dpsims_aug import synthesis
_orig = synthesis.Synthesizer.synthesize
def _slow(self, *a, **k):
    time.sleep(0.15)
    return _orig(self, *a, **k)
synthesis.Synthesizer.synthesize = _slow
from dpsims_aug.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _write_maps(folder: Path, count: int, size=(64, 64), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(count):
        raw = np.zeros(size, np.uint8)  # raw 0 = unlabeled, 1..10 = classes (ADE-style)
        raw[size[0] // 3 :] = rng.integers(1, 11)
        raw[2 * size[0] // 3 :, : size[1] // 2] = rng.integers(0, 11)
        write_label_map(folder / f"map_{i:02d}.png", raw)
    return folder


def _tree(out: Path) -> dict[str, bytes]:
    """Every file of a generate output that must be reproducible, with its bytes."""
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    return {k: v for k, v in files.items() if k.startswith(("images/", "annotations/")) or k == "manifest.jsonl"}


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_output_folder_manifest_and_annotations(ckpt, tmp_path):
    labels = _write_maps(tmp_path / "labels", 3)
    summary = generate(labels, n=2, checkpoint=ckpt, batch_size=2, progress=False)
    out = tmp_path / "labels_dpsims"
    assert summary.out == out and summary.generated == 6 and summary.merged
    expected = [f"map_{i:02d}_s{k}.jpg" for i in range(3) for k in (0, 1)]
    assert sorted(p.name for p in (out / "images").iterdir()) == expected
    for i in range(3):
        src = labels / f"map_{i:02d}.png"
        for k in (0, 1):
            ann = out / "annotations" / f"map_{i:02d}_s{k}.png"
            assert ann.read_bytes() == src.read_bytes() and os.path.samefile(ann, src)  # hard link
    lines = (out / "manifest.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["key"], r["k"]) for r in records] == [(f"map_{i:02d}.png", k) for i in range(3) for k in (0, 1)]
    sha = file_sha256(ckpt)
    for r in records:
        data = (out / r["image"]).read_bytes()
        assert r["seed"] == derive_seed(0, r["key"], r["k"]) and r["checkpoint_sha256"] == sha
        assert r["image_sha256"] == hashlib.sha256(data).hexdigest() and r["image_bytes"] == len(data)
    assert json.loads((out / "labels.json").read_text())["name"] == "embedded"
    assert "reduce_zero_label=True" in (out / "dataset_config.py").read_text()
    assert not list(out.rglob(".*"))  # no temp or lock files left


def test_mmseg_base_seg_dataset_loads_the_output(ckpt, tmp_path):
    mmengine = pytest.importorskip("mmengine")
    mmseg_datasets = pytest.importorskip("mmseg.datasets")
    from mmseg.datasets.transforms import LoadAnnotations

    labels = _write_maps(tmp_path / "labels", 2)
    generate(labels, n=2, checkpoint=ckpt, batch_size=2, progress=False)
    out = tmp_path / "labels_dpsims"
    cfg = mmengine.Config.fromfile(str(out / "dataset_config.py"))
    kwargs = cfg.dpsims_train_dataset.to_dict()
    assert kwargs.pop("type") == "BaseSegDataset"
    dataset = mmseg_datasets.BaseSegDataset(**kwargs)
    assert len(dataset) == 4 and dataset.metainfo["classes"] == SPACE.class_names
    info = dataset.get_data_info(0)
    assert Path(info["img_path"]).is_file() and info["reduce_zero_label"] is True
    loaded = LoadAnnotations()(dict(info, seg_fields=[]))
    raw = read_label_map(labels / "map_00.png")
    np.testing.assert_array_equal(loaded["gt_seg_map"], SPACE.to_contiguous(raw))


def test_resume_after_sigkill_is_byte_identical(ckpt, tmp_path):
    labels = _write_maps(tmp_path / "labels", 6)
    reference = generate(labels, n=3, out=tmp_path / "ref", checkpoint=ckpt, batch_size=2, progress=False)
    assert reference.generated == 18

    out = tmp_path / "killed"
    args = ["generate", "--labels", str(labels), "--n", "3", "--out", str(out), "--checkpoint", str(ckpt),
            "--batch-size", "2", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_MAIN, *args], env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not (out.exists() and len(read_manifest_records(out)) >= 4):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    done_before = len(read_manifest_records(out))
    assert 4 <= done_before < 18  # really killed mid-way
    for rec in read_manifest_records(out).values():  # what the manifest lists is complete
        assert (out / rec["image"]).stat().st_size == rec["image_bytes"]

    assert generate(labels, n=3, out=out, checkpoint=ckpt, batch_size=2, progress=False, dry_run=True).already_done \
        == done_before
    resumed = generate(labels, n=3, out=out, checkpoint=ckpt, batch_size=2, progress=False)
    assert resumed.already_done == done_before and resumed.generated == 18 - done_before
    assert _tree(out) == _tree(tmp_path / "ref")
    assert not list(out.rglob(".*"))
    again = generate(labels, n=3, out=out, checkpoint=ckpt, batch_size=2, progress=False)
    assert again.generated == 0 and again.already_done == 18


def test_two_shard_processes_split_the_work_without_overlap_or_gaps(ckpt, tmp_path):
    labels = _write_maps(tmp_path / "labels", 3)
    generate(labels, n=2, out=tmp_path / "ref", checkpoint=ckpt, batch_size=2, progress=False)
    out = tmp_path / "sharded"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dpsims_aug.cli", "generate", "--labels", str(labels), "--n", "2", "--out",
             str(out), "--checkpoint", str(ckpt), "--batch-size", "2", "--shard", f"{i}/2", "--no-progress"],
            env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    pairs = [(r["key"], r["k"]) for r in lines]
    assert sorted(pairs) == pairs == [(f"map_{i:02d}.png", k) for i in range(3) for k in (0, 1)]
    assert not list(out.glob("manifest.shard-*"))
    assert _tree(out) == _tree(tmp_path / "ref")
    assert b"shard 0/2" in results[0][0] and b"shard 1/2" in results[1][0]


def test_shard_and_device_come_from_torchrun_env(monkeypatch):
    assert resolve_shard("1/3") == (1, 3) and resolve_shard(None) == (0, 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_shard(None) == (1, 2) and resolve_shard("0/4") == (0, 4)
    assert resolve_device("cuda") == "cuda:1" and resolve_device("cpu") == "cpu"
    with pytest.raises(GenerateError, match="i/N"):
        resolve_shard("x")
    with pytest.raises(GenerateError, match="invalid"):
        resolve_shard("2/2")


def _add_bad_maps(folder: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "bad_rgb.png")
    good = (folder / "map_00.png").read_bytes()
    (folder / "bad_truncated.png").write_bytes(good[: len(good) // 2])
    write_label_map(folder / "bad_ids.png", np.full((64, 64), 50, np.uint8))


def test_bad_inputs_stop_before_generating_or_are_skipped(ckpt, tmp_path, capsys):
    labels = _write_maps(tmp_path / "labels", 2)
    out = tmp_path / "out"
    generate(labels, n=1, out=out, checkpoint=ckpt, batch_size=2, progress=False)
    before = _tree(out)
    _write_maps(tmp_path / "more", 1, seed=1)
    os.replace(tmp_path / "more" / "map_00.png", labels / "map_02.png")
    _add_bad_maps(labels)

    with pytest.raises(GenerateError) as err:
        generate(labels, n=1, out=out, checkpoint=ckpt, batch_size=2, progress=False)
    msg = str(err.value)
    assert "3 label map(s) cannot be used; nothing was generated" in msg
    assert "bad_rgb.png" in msg and "RGB colour image" in msg and "bad_truncated.png" in msg
    assert "bad_ids.png" in msg and "{50}" in msg
    assert _tree(out) == before and not (out / "images" / "map_02_s0.jpg").exists()

    rc = main(["generate", "--labels", str(labels), "--n", "1", "--out", str(out), "--checkpoint", str(ckpt),
               "--on-error", "skip", "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0 and "skipped 3 label map(s)" in printed and "bad_ids.png" in printed
    assert (out / "images" / "map_02_s0.jpg").is_file()
    assert all(before[k] == v for k, v in _tree(out).items() if k in before and k != "manifest.jsonl")
    assert len(read_manifest_records(out)) == 3

    rc = main(["generate", "--labels", str(labels), "--n", "1", "--out", str(out), "--checkpoint", str(ckpt)])
    assert rc == 2 and "bad_truncated.png" in capsys.readouterr().err


def test_paths_never_escape_out(ckpt, tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    data = datasets.Dataset.from_dict(
        {"label": [Image.fromarray(np.ones((64, 64), np.uint8))], "name": ["../../evil"]},
        features=datasets.Features({"label": datasets.Image(), "name": datasets.Value("string")}),
    )
    data.save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(GenerateError, match="outside the output folder"):
        generate(hf=tmp_path / "hf", hf_id_column="name", n=1, out=tmp_path / "out", checkpoint=ckpt)
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil_s0.jpg").exists()
    labels = _write_maps(tmp_path / "labels", 1)
    with pytest.raises(GenerateError, match="inside the input folder"):
        generate(labels, n=1, out=labels / "out", checkpoint=ckpt)


def test_hf_input_and_hf_output(ckpt, tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    raws = [np.full((64, 64), v, np.uint8) for v in (0, 3)]
    data = datasets.Dataset.from_dict({"label": [Image.fromarray(r) for r in raws]},
                                      features=datasets.Features({"label": datasets.Image()}))
    data.save_to_disk(str(tmp_path / "hfin"))
    out = tmp_path / "out"
    summary = generate(hf=tmp_path / "hfin", n=2, out=out, checkpoint=ckpt, hf_out=True, progress=False)
    assert summary.generated == 4
    np.testing.assert_array_equal(read_label_map(out / "annotations/train/00000001_s1.png"), raws[1])
    written = datasets.load_from_disk(str(summary.hf_dataset))
    assert len(written) == 4 and written[0]["key"] == "train/00000000"
    assert np.asarray(written[3]["image"]).shape == (64, 64, 3)


def test_dry_run_grid_and_resume_refuses_other_checkpoint(ckpt, tmp_path, capsys):
    labels = _write_maps(tmp_path / "labels", 5)
    out = tmp_path / "out"
    rc = main(["generate", "--labels", str(labels), "--n", "2", "--out", str(out), "--checkpoint", str(ckpt),
               "--dry-run"])
    assert rc == 0 and "5 label maps, 10 images in all, 0 already done, 10 to make" in capsys.readouterr().out
    assert not out.exists()

    summary = generate(labels, n=2, out=out, checkpoint=ckpt, grid=True, progress=False)
    from PIL import Image

    with Image.open(summary.preview) as preview:  # 4 rows (first maps) x (labels + 2 samples), 64 px + 4 px gaps
        assert preview.size == (3 * 68 + 4, 4 * 68 + 4)
    dry = generate(labels, n=3, out=out, checkpoint=ckpt, dry_run=True)
    assert (dry.images_total, dry.already_done) == (15, 10)

    other = tiny_generator_checkpoint(tmp_path / "other.safetensors", seed=1)
    with pytest.raises(GenerateError, match="another checkpoint"):
        generate(labels, n=2, out=out, checkpoint=other, progress=False)
    with pytest.raises(GenerateError, match="another --seed"):
        generate(labels, n=2, out=out, checkpoint=ckpt, seed=1, progress=False)


def test_missing_defaults_are_explained(ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gen, "default_checkpoint_path", lambda: tmp_path / "assets" / "embedded_small.safetensors")
    monkeypatch.setattr(gen, "default_sample_labels_path", lambda: tmp_path / "assets" / "sample_labels")
    labels = _write_maps(tmp_path / "labels", 1)
    assert main(["generate", "--labels", str(labels), "--n", "1"]) == 2
    assert "bundled default generator is not installed" in capsys.readouterr().err
    assert main(["generate", "--n", "1", "--checkpoint", str(ckpt)]) == 2
    assert "bundled sample label maps are not installed" in capsys.readouterr().err


def test_odd_sizes_and_png_format(ckpt, tmp_path):
    labels = _write_maps(tmp_path / "labels", 2, size=(50, 70))
    summary = generate(labels, n=1, checkpoint=ckpt, image_format="png", progress=False)
    from PIL import Image

    with Image.open(summary.out / "images" / "map_01_s0.png") as image:
        assert image.size == (70, 50)
    assert "img_suffix='.png'" in (summary.out / "dataset_config.py").read_text()


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A small valid PNG whose header (IHDR, CRC fixed up) claims ``width x height`` pixels."""
    import struct
    import zlib

    from PIL import Image

    Image.fromarray(np.ones((8, 8), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    path.write_bytes(bytes(data))


def test_decompression_bomb_and_dangling_link_are_named_and_skipped(ckpt, tmp_path, capsys):
    labels = _write_maps(tmp_path / "labels", 2)
    _png_claiming(labels / "bomb.png", 60000, 60000)
    (labels / "gone.png").symlink_to(tmp_path / "no_such_target.png")
    out = tmp_path / "out"
    with pytest.raises(GenerateError) as err:  # stop mode: refused, by name, before anything is written
        generate(labels, n=1, out=out, checkpoint=ckpt, batch_size=2, progress=False)
    msg = str(err.value)
    assert "bomb.png" in msg and "3600000000 pixels" in msg and "DPSIMS_AUG_MAX_PIXELS" in msg
    assert "gone.png" in msg and "not found" in msg
    assert not (out / "images").exists()
    rc = main(["generate", "--labels", str(labels), "--n", "1", "--out", str(out), "--checkpoint", str(ckpt),
               "--on-error", "skip", "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0 and "skipped 2 label map(s)" in printed and "bomb.png" in printed and "gone.png" in printed
    assert sorted(p.name for p in (out / "images").iterdir()) == ["map_00_s0.jpg", "map_01_s0.jpg"]


def test_max_batch_pixels_batches_big_maps_smaller_and_stays_deterministic(ckpt, tmp_path):
    """``--max-batch-pixels``: a pool written with room for 2 maps per forward equals one written with
    ``--batch-size 2``; the CLI's default is the library's."""
    from dpsims_aug.cli import build_parser
    from dpsims_aug.synthesis import DEFAULT_MAX_BATCH_PIXELS

    labels = _write_maps(tmp_path / "maps", 3)
    assert main(["generate", "--labels", str(labels), "--n", "2", "--checkpoint", str(ckpt), "--out",
                 str(tmp_path / "limited"), "--max-batch-pixels", str(2 * 64 * 64), "--no-progress"]) == 0
    assert main(["generate", "--labels", str(labels), "--n", "2", "--checkpoint", str(ckpt), "--out",
                 str(tmp_path / "pairs"), "--batch-size", "2", "--max-batch-pixels", "0", "--no-progress"]) == 0
    limited, pairs = _tree(tmp_path / "limited"), _tree(tmp_path / "pairs")
    assert len([k for k in limited if k.startswith("images/")]) == 6
    assert {k: v for k, v in limited.items() if k != "manifest.jsonl"} == \
        {k: v for k, v in pairs.items() if k != "manifest.jsonl"}
    help_text = build_parser().format_help() + build_parser()._subparsers._group_actions[0].choices[
        "generate"].format_help()
    assert f"default: {DEFAULT_MAX_BATCH_PIXELS}" in help_text.replace("\n", " ").replace("  ", " ")


def test_the_summary_line_gives_seconds_per_image_when_slow():
    """A full-resolution map on a CPU takes over a second per image: the summary says 's/img', never '0.0 img/s'."""
    from dpsims_aug.cli import _rate
    from dpsims_aug.pool.writer import GenerateSummary

    slow = GenerateSummary(Path("out"), (0, 1), generated=4, seconds=312.0)
    fast = GenerateSummary(Path("out"), (0, 1), generated=100, seconds=2.0)
    assert _rate(slow) == "78.0 s/img" and _rate(fast) == "50.0 img/s"
