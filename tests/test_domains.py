"""Scene domains: deterministic per domain, source unchanged, and a clear shift in layout and appearance."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from dpsims_aug.data.scenes import (
    CLASS_NAMES,
    DEFAULT_DOMAIN,
    DOMAINS,
    Domain,
    get_domain,
    iter_scenes,
    render_layout,
    render_scene,
    scene_grid,
    scene_seeds,
)
from dpsims_aug.data.writers import write_dataset

SIZE = (32, 48)
TARGETS = ("arid", "snow")
SKY, CLOUD, MOUNTAIN, WATER, SAND, GRASS, TREE, ROCK, BUILDING, ROAD = range(10)

# Pinned output per domain (scenes 0..2 of seed 0 at 32x48). The source digest is the output of the renderer
# before domains existed. A change on purpose: bump SCENES_VERSION and update these.
GOLDEN = {
    "source": "0b900835055600fe6edbd170042c34caa1196dbace60445280d1eaa84a68f506",
    "arid": "fd5bda2651d38ae7e5bc154f358c431202e932114319e7d5b6eba4b5a2c39721",
    "snow": "631b40cd21fdf36dea82f88a60ebcacf7d20ce28b75c48fd09fb61ff1dc179f3",
}


def _digest(domain: str) -> str:
    h = hashlib.sha256()
    for image, labels in iter_scenes(3, SIZE, seed=0, domain=domain):
        h.update(image.tobytes())
        h.update(labels.tobytes())
    return h.hexdigest()


def _class_fractions(domain: str, n: int = 40, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    counts = np.zeros(256)
    for i in range(n):
        counts += np.bincount(render_layout(scene_seeds(0, i)[0], size, domain).ravel(), minlength=256)
    return counts[:10] / counts.sum()


def _class_colours(domain: str, n: int = 16, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    """Mean RGB per class over ``n`` scenes (NaN for a class never drawn)."""
    sums, counts = np.zeros((10, 3)), np.zeros(10)
    for image, labels in iter_scenes(n, size, seed=0, domain=domain):
        for c in range(10):
            m = labels == c
            sums[c] += image[m].sum(axis=0)
            counts[c] += m.sum()
    with np.errstate(invalid="ignore"):
        return sums / counts[:, None]


def test_registry_and_names():
    assert DEFAULT_DOMAIN == "source" and set(DOMAINS) == {"source", *TARGETS}
    assert all(isinstance(d, Domain) and d.name == name for name, d in DOMAINS.items())
    # The source domain is the dataclass defaults (the constants of the original renderer).
    assert dataclasses.replace(DOMAINS["source"], description="") == Domain("source")
    with pytest.raises(ValueError, match="source, arid, snow"):
        get_domain("desert")
    with pytest.raises(ValueError, match="source, arid, snow"):
        render_scene(0, 0, SIZE, domain="desert")
    with pytest.raises(ValueError, match="source, arid, snow"):
        iter_scenes(1, SIZE, domain="desert")
    with pytest.raises(ValueError):
        Domain("bad", time_p=(0.5, 0.5))  # one probability per time of day


@pytest.mark.parametrize("domain", sorted(GOLDEN))
def test_each_domain_is_deterministic_and_pinned(domain):
    first = _digest(domain)
    assert first == _digest(domain)
    assert first == GOLDEN[domain], "renderer changed: bump SCENES_VERSION and update GOLDEN"


def test_source_is_the_default():
    ls, aps = scene_seeds(0, 4)
    for a, b in zip(render_scene(ls, aps, SIZE), render_scene(ls, aps, SIZE, domain="source")):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(render_layout(ls, SIZE), render_layout(ls, SIZE, "source"))
    np.testing.assert_array_equal(scene_grid(1, 1, SIZE), scene_grid(1, 1, SIZE, domain="source"))


@pytest.mark.parametrize("domain", TARGETS)
def test_targets_keep_the_stage_split_and_the_label_set(domain):
    img_a, lab_a = render_scene(5, 1, SIZE, domain)
    img_b, lab_b = render_scene(5, 2, SIZE, domain)
    np.testing.assert_array_equal(lab_a, lab_b)  # appearance never changes the layout
    np.testing.assert_array_equal(lab_a, render_layout(5, SIZE, domain))
    assert np.abs(img_a.astype(int) - img_b.astype(int)).mean() > 5
    assert set(np.unique(lab_a).tolist()) <= set(range(len(CLASS_NAMES))) | {255}
    assert scene_grid(2, 2, SIZE, domain=domain).shape == (2 * 34 + 2, 3 * 50 + 2, 3)


def test_layout_statistics_shift():
    src, arid, snow = (_class_fractions(d) for d in ("source", "arid", "snow"))
    # Arid: sand (a shore strip in the source) becomes a main class; water and grass shrink, rocks grow.
    assert arid[SAND] > 0.25 and arid[SAND] > 5 * src[SAND]
    assert arid[WATER] < 0.3 * src[WATER] and arid[GRASS] < 0.5 * src[GRASS]
    assert arid[ROCK] > 2 * src[ROCK] and arid[CLOUD] < 0.3 * src[CLOUD]
    # Snow: more mountains, rocks and clouds; fewer buildings; hardly any sand.
    assert snow[MOUNTAIN] > 1.3 * src[MOUNTAIN] and snow[ROCK] > 3 * src[ROCK]
    assert snow[CLOUD] > 1.3 * src[CLOUD] and snow[BUILDING] < 0.7 * src[BUILDING]
    assert snow[SAND] < 0.5 * src[SAND]


def test_appearance_shift():
    src, arid, snow = (_class_colours(d) for d in ("source", "arid", "snow"))
    dist_arid = np.linalg.norm(arid - src, axis=1)
    dist_snow = np.linalg.norm(snow - src, axis=1)
    # Snow-covered grass, red sandstone and orange dune sand are far from their source colours ...
    assert dist_snow[GRASS] > 60 and snow[GRASS].mean() > src[GRASS].mean() + 30
    assert dist_arid[MOUNTAIN] > 40 and dist_arid[SAND] > 30
    # ... and most classes look clearly different in each target.
    assert (dist_arid > 25).sum() >= 6 and (dist_snow > 20).sum() >= 6


def test_write_dataset_records_the_domain_and_refuses_another(tmp_path):
    out = tmp_path / "arid"
    summary = write_dataset(out, "folder", 2, 1, SIZE, domain="arid")
    assert summary["domain"] == "arid" and summary["written"] == 3
    assert json.loads((out / "dataset.json").read_text())["domain"] == "arid"
    from PIL import Image

    # Same seeds as every other domain; the arid priors draw the pixels.
    expected, _ = render_scene(*scene_seeds(0, 1, 0), SIZE, domain="arid")
    np.testing.assert_array_equal(np.asarray(Image.open(out / "images/train_000001.png")), expected)
    assert write_dataset(out, "folder", 2, 1, SIZE, domain="arid")["skipped"] == 3
    for other in ("snow", "source"):
        with pytest.raises(FileExistsError, match="domain='arid'"):
            write_dataset(out, "folder", 2, 1, SIZE, domain=other)
    assert write_dataset(out, "folder", 2, 1, SIZE, domain="snow", overwrite=True)["written"] == 3
    with pytest.raises(ValueError, match="source, arid, snow"):
        write_dataset(tmp_path / "bad", "folder", 1, 0, SIZE, domain="desert")
    assert not (tmp_path / "bad").exists()


def test_a_manifest_without_domain_is_source(tmp_path):
    out = tmp_path / "old"
    write_dataset(out, "ade20k", 2, 1, SIZE)
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest.pop("domain") == "source"
    (out / "dataset.json").write_text(json.dumps(manifest))  # as written before domains existed
    assert write_dataset(out, "ade20k", 2, 1, SIZE)["skipped"] == 3
    (out / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(FileExistsError, match="domain='source'"):
        write_dataset(out, "ade20k", 2, 1, SIZE, domain="snow")
