"""dpsims-aug layouts: new label maps (flip, zoom, class-aware copy-paste) that generate renders images for."""

from __future__ import annotations

import numpy as np
import pytest

from dpsims_aug.cli import main as cli_main
from dpsims_aug.data.writers import write_dataset
from dpsims_aug.label_maps import read_label_map
from dpsims_aug.layouts import LayoutAugment, augment_layout, write_layouts

NOTHING = LayoutAugment(flip=False, scale=(1.0, 1.0), max_pastes=0)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    source = np.full((32, 48), 1, np.uint8)
    source[20:, :] = 6  # ground
    donor = np.full((32, 48), 1, np.uint8)
    donor[10:16, 30:36] = 9  # one 36-pixel object at rows 10..15
    return source, donor


def test_without_operations_the_map_is_unchanged():
    source, donor = _scene()
    out = augment_layout(source, np.random.default_rng(0), [donor], NOTHING)
    assert np.array_equal(out, source) and out.dtype == source.dtype


def test_flip_and_zoom_keep_ids_unblended():
    source = np.random.default_rng(1).integers(1, 5, (32, 48)).astype(np.uint16) * 100  # ids 100..400
    for seed in range(5):
        out = augment_layout(source, np.random.default_rng(seed), [], LayoutAugment(scale=(1.2, 2.0), max_pastes=0))
        assert out.shape == source.shape and out.dtype == np.uint16
        assert set(np.unique(out).tolist()) <= set(np.unique(source).tolist())
        assert not np.array_equal(out, source)


def test_copy_paste_keeps_the_objects_height_and_size():
    source, donor = _scene()
    params = LayoutAugment(flip=False, scale=(1.0, 1.0), max_pastes=1, paste_prob=1.0, min_area=0.01)
    for seed in range(10):
        out = augment_layout(source, np.random.default_rng(seed), [donor], params)
        rows, cols = np.nonzero(out == 9)
        assert len(rows) == 36 and rows.min() == 10 and rows.max() == 15  # same size, same height
        assert cols.max() - cols.min() == 5 and 0 <= cols.min() and cols.max() < 48  # inside the map
        assert np.array_equal(out[out != 9], source[out != 9])  # everything else untouched


def test_paste_ids_and_area_limits_choose_the_objects():
    source, donor = _scene()
    only_trees = LayoutAugment(flip=False, scale=(1.0, 1.0), max_pastes=3, paste_prob=1.0, paste_ids=(7,))
    assert np.array_equal(augment_layout(source, np.random.default_rng(0), [donor], only_trees), source)
    too_small = LayoutAugment(flip=False, scale=(1.0, 1.0), max_pastes=3, paste_prob=1.0, min_area=0.05)
    assert np.array_equal(augment_layout(source, np.random.default_rng(0), [donor], too_small), source)


def test_write_layouts_resumes_and_generate_renders_them(tmp_path):
    write_dataset(tmp_path / "data", "ade20k", n_train=4, n_val=1, size=(32, 32))
    summary = write_layouts(tmp_path / "data", 3, tmp_path / "lay", dataset_format="ade20k", split="train",
                            progress=False, log=lambda m: None)
    assert summary.label_maps == 4 and summary.written == 12
    files = sorted((tmp_path / "lay").rglob("*.png"))
    assert len(files) == 12 and files[0].relative_to(tmp_path / "lay").as_posix() == "training/scene_000000_l0.png"
    sources = {read_label_map(p).tobytes() for p in (tmp_path / "data" / "annotations" / "training").glob("*.png")}
    new = [read_label_map(p) for p in files]
    assert sum(m.tobytes() not in sources for m in new) >= 10  # new layouts, not copies
    first = files[0].read_bytes()
    files[0].unlink()
    again = write_layouts(tmp_path / "data", 3, tmp_path / "lay", dataset_format="ade20k", split="train",
                          progress=False, log=lambda m: None)
    assert again.written == 1 and again.already_done == 11 and files[0].read_bytes() == first  # same seed, same map
    with pytest.raises(ValueError, match="k must be"):
        write_layouts(tmp_path / "data", 0, tmp_path / "x", progress=False)

    rc = cli_main(["generate", "--labels", str(tmp_path / "lay"), "--dataset-format", "bare", "--n", "1", "--out",
                   str(tmp_path / "pool"), "--no-progress", "--workers", "1"])
    assert rc == 0
    images = sorted((tmp_path / "pool" / "images").rglob("*.jpg"))
    assert len(images) == 12 and images[0].name == "scene_000000_l0_s0.jpg"


def test_cli_layouts(tmp_path, capsys):
    write_dataset(tmp_path / "data", "ade20k", n_train=2, n_val=1, size=(32, 32))
    rc = cli_main(["layouts", "--labels", str(tmp_path / "data"), "--split", "train", "--k", "2", "--out",
                   str(tmp_path / "lay"), "--paste-ids", "7,8,9", "--no-progress"])
    assert rc == 0 and "generate --labels" in capsys.readouterr().out
    assert len(list((tmp_path / "lay").rglob("*.png"))) == 4
    rc = cli_main(["layouts", "--labels", str(tmp_path / "missing"), "--out", str(tmp_path / "x"), "--no-progress"])
    assert rc == 2 and "missing" in capsys.readouterr().err


# Every command that took the dataset format as --layout before the rename, with its required options.
DATASET_FORMAT_COMMANDS = {
    "dataset": ["--out", "x"],
    "generate": [],
    "layouts": ["--labels", "l", "--out", "o"],
    "filter": ["--pool", "p", "--real", "r", "--seg-config", "c", "--seg-checkpoint", "k"],
    "evaluate": ["--checkpoint", "g", "--data", "d"],
}


@pytest.mark.parametrize("command", sorted(DATASET_FORMAT_COMMANDS))
def test_layout_is_a_hidden_deprecated_alias_of_dataset_format(command, tmp_path, capsys):
    """``--layout`` meant the dataset's on-disk format, not a label map's layout (``dpsims-aug layouts``): it is
    ``--dataset-format`` now, and the old spelling still sets it (with a warning) without being shown in --help."""
    from dpsims_aug.cli import build_parser

    parser, required = build_parser(), DATASET_FORMAT_COMMANDS[command]
    assert parser.parse_args([command, *required, "--dataset-format", "folder"]).dataset_format == "folder"
    assert capsys.readouterr().err == ""
    assert parser.parse_args([command, *required, "--layout", "folder"]).dataset_format == "folder"
    assert "--layout is deprecated; use --dataset-format" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([command, "--help"])
    shown = capsys.readouterr().out
    assert exit_info.value.code == 0 and "--dataset-format" in shown and "--layout" not in shown
    if command == "dataset":  # an old script runs as before
        rc = cli_main(["dataset", "--layout", "folder", "--out", str(tmp_path / "d"), "--train", "1", "--val", "0",
                       "--size", "16"])
        assert rc == 0 and (tmp_path / "d" / "splits" / "train.txt").is_file()
        assert "(folder format, source domain)" in capsys.readouterr().out
