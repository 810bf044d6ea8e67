"""LabelSpace conventions and label-map I/O: the errors must name the file and the problem."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dpsims_aug.label_maps import list_label_maps, load_label_map, read_label_map, write_label_map
from dpsims_aug.labels import (
    LABEL_SPACE_PRESETS,
    LabelMapError,
    LabelSpace,
    ade20k_label_space,
    cityscapes_label_space,
    coco_stuff_label_space,
    embedded_label_space,
    get_label_space,
)


@pytest.mark.parametrize("name", sorted(LABEL_SPACE_PRESETS))
def test_presets_round_trip_through_json(name, tmp_path):
    space = get_label_space(name)
    assert LabelSpace.from_json(space.to_json()) == space
    path = tmp_path / "labels.json"
    path.write_text(space.to_json())
    assert get_label_space(path) == space
    assert len(space.palette) == space.num_classes == len(space.class_names)


def test_preset_sizes_and_names():
    assert ade20k_label_space().num_classes == 150
    assert ade20k_label_space().class_names[:3] == ("wall", "building", "sky")
    assert coco_stuff_label_space(171).num_classes == 171
    assert coco_stuff_label_space(182).num_classes == 182
    assert cityscapes_label_space().num_classes == 35
    city19 = cityscapes_label_space(train_ids=True)
    assert city19.num_classes == 19 and city19.class_names[0] == "road" and city19.class_names[-1] == "bicycle"
    assert embedded_label_space().num_classes == 10


def test_ade20k_mapping_matches_reduce_zero_label():
    """raw 0 -> ignore, 1..150 -> 0..149: the same as mmseg's reduce_zero_label."""
    raw = np.arange(151, dtype=np.uint8).reshape(1, -1)
    out = ade20k_label_space().to_contiguous(raw)
    expected = raw.astype(np.int64) - 1
    expected[expected == -1] = 255
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8


def test_coco_stuff_171_skips_unused_ids_and_182_keeps_them():
    raw = np.array([[0, 10, 12, 181, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(coco_stuff_label_space(171).to_contiguous(raw), [[0, 10, 11, 170, 255]])
    np.testing.assert_array_equal(coco_stuff_label_space(182).to_contiguous(raw), [[0, 10, 12, 181, 255]])
    with pytest.raises(LabelMapError, match=r"\{11\}"):
        coco_stuff_label_space(171).to_contiguous(np.array([[11]], dtype=np.uint8))


def test_cityscapes_train_ids_from_label_ids():
    space = cityscapes_label_space(train_ids=True)
    raw = np.array([[7, 8, 26, 33, 0, 1, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(space.to_contiguous(raw), [[0, 1, 13, 18, 255, 255, 255]])
    # Files that already hold trainIds.
    np.testing.assert_array_equal(space.contiguous().to_contiguous(np.array([[0, 18, 255]])), [[0, 18, 255]])


def test_unknown_ids_are_listed_with_the_file():
    with pytest.raises(LabelMapError) as info:
        ade20k_label_space().to_contiguous(np.array([[3, 151, 200]], dtype=np.uint8), source="a/b.png")
    message = str(info.value)
    assert "a/b.png" in message and "151" in message and "200" in message and "ade20k" in message


def test_to_raw_inverts_to_contiguous():
    space = embedded_label_space()
    raw = np.array([[0, 1, 5, 10]], dtype=np.uint8)
    np.testing.assert_array_equal(space.to_raw(space.to_contiguous(raw)), raw)


def test_colorize_and_rgb_round_trip():
    space = embedded_label_space()
    ids = np.array([[0, 1, 2], [9, 255, 3]], dtype=np.uint8)
    rgb = space.colorize(ids)
    assert rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(space.rgb_to_contiguous(rgb), ids)
    with pytest.raises(LabelMapError, match="not in the palette"):
        space.rgb_to_contiguous(np.full((1, 1, 3), 7, dtype=np.uint8), source="x.png")


def test_invalid_label_space_is_rejected():
    with pytest.raises(ValueError, match="raw id is listed twice"):
        LabelSpace("bad", ("a", "b"), ((0, 0, 0), (1, 1, 1)), (1, 1))
    with pytest.raises(ValueError, match="2 class names but 1 colours"):
        LabelSpace("bad", ("a", "b"), ((0, 0, 0),), (1, 2))
    with pytest.raises(ValueError, match="unknown label space"):
        get_label_space("nope")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_label_map_round_trip_8_and_16_bit(tmp_path, dtype):
    ids = (np.arange(64).reshape(8, 8) * (300 if dtype == np.uint16 else 3)).astype(dtype)
    path = tmp_path / "map.png"
    write_label_map(path, ids)
    back = read_label_map(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, ids)
    assert not list(tmp_path.glob(".*tmp*")), "atomic write left a temporary file"


def test_palette_png_reads_as_indices(tmp_path):
    ids = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    image = Image.fromarray(ids, mode="P")
    image.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    image.save(tmp_path / "voc.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "voc.png"), ids)


def test_rgb_label_map_is_rejected_with_a_hint(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "colour.png")
    with pytest.raises(LabelMapError) as info:
        read_label_map(tmp_path / "colour.png")
    assert "colour.png" in str(info.value) and "RGB" in str(info.value) and "rgb_to_contiguous" in str(info.value)


def test_truncated_and_missing_files_are_named(tmp_path):
    path = tmp_path / "cut.png"
    write_label_map(path, np.zeros((32, 32), dtype=np.uint8) + np.arange(32, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(LabelMapError, match="cut.png.*unreadable or truncated"):
        read_label_map(path)
    (tmp_path / "junk.png").write_text("not an image")
    with pytest.raises(LabelMapError, match="junk.png"):
        read_label_map(tmp_path / "junk.png")
    with pytest.raises(LabelMapError, match="missing.png: file not found"):
        read_label_map(tmp_path / "missing.png")


def test_list_label_maps_recursive_sorted_and_empty_folder(tmp_path):
    for rel in ["b/2.png", "a/1.png", "a/0.png", "c.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write_label_map(tmp_path / rel, np.zeros((2, 2), np.uint8)) if rel.endswith(".png") else (
            tmp_path / rel
        ).write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_label_maps(tmp_path)]
    assert found == ["a/0.png", "a/1.png", "b/2.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelMapError, match="empty: holds no label maps"):
        list_label_maps(tmp_path / "empty")
    with pytest.raises(LabelMapError, match="is not a folder"):
        list_label_maps(tmp_path / "nowhere")


def test_load_label_map_names_file_with_unknown_ids(tmp_path):
    write_label_map(tmp_path / "bad.png", np.array([[1, 42]], dtype=np.uint8))
    with pytest.raises(LabelMapError, match=r"bad.png: label ids \{42\}"):
        load_label_map(tmp_path / "bad.png", embedded_label_space())


def test_import_without_openmmlab():
    """`import dpsims_aug` must work on a machine without mmcv/mmseg/mmengine."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('mmcv', 'mmseg', 'mmengine'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import dpsims_aug, dpsims_aug.labels, dpsims_aug.cli\n"
        "assert not any(m.split('.')[0] in ('mmcv', 'mmseg', 'mmengine') for m in sys.modules)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_pixel_limit_refuses_by_name_before_decoding(tmp_path, monkeypatch):
    from PIL import Image

    from dpsims_aug import label_maps
    from dpsims_aug.label_maps import read_label_map
    from dpsims_aug.labels import LabelMapError

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(path)
    monkeypatch.setattr(label_maps, "MAX_PIXELS", 1000)
    with pytest.raises(LabelMapError, match=r"big\.png.*64x64 pixels, more than the limit of 1000"):
        read_label_map(path)
    monkeypatch.setattr(label_maps, "MAX_PIXELS", 4096)
    assert read_label_map(path).shape == (64, 64)


def _space(raw_ids, raw_ignore=()):
    return LabelSpace("t", tuple(f"c{r}" for r in raw_ids), tuple((r, r, r) for r in raw_ids), raw_ids, raw_ignore)


def test_mmseg_annotation_classes_undo_reduce_zero_label_and_label_map():
    space = _space((1, 2, 3), raw_ignore=(0,))  # ADE-style: 0 unlabeled, classes 1..3
    lut = space.mmseg_annotation_classes(reduce_zero_label=True)
    assert lut[[0, 1, 2, 255]].tolist() == [0, 1, 2, 255]  # value v came from raw v + 1
    assert lut[3] == -1  # raw 4: not a class of this space
    plain = space.mmseg_annotation_classes()
    assert plain[[0, 1, 3, 4, 255]].tolist() == [255, 0, 2, -1, 255]  # raw ids as they are; 0 is unlabeled
    # A config's classes subset: dataset id 2 -> new id 0, others -> 255 (mmseg's label_map).
    mapped = space.mmseg_annotation_classes(label_map={0: 255, 1: 255, 2: 0})
    assert mapped[0] == 1 and mapped[255] == 255 and mapped[1] == -1
    contiguous = space.mmseg_annotation_classes(contiguous=True)
    assert contiguous[[0, 2, 3, 255]].tolist() == [0, 2, -1, 255]
    with pytest.raises(ValueError, match="cannot both"):
        space.mmseg_annotation_classes(reduce_zero_label=True, contiguous=True)


def test_class_translation_goes_through_shared_raw_ids():
    data, model = _space((1, 2, 3, 9)), _space((3, 1), raw_ignore=(2,))
    assert data.class_translation(model).tolist() == [1, 255, 0, -1]  # raw 2 is unlabeled for the model
    assert data.class_translation(data).tolist() == [0, 1, 2, 3]
