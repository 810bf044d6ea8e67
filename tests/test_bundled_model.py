"""The bundled generator itself: what `make demo` and every default `generate` / `DPSIMSAugment` produce."""

from __future__ import annotations

import numpy as np
import pytest

from dpsims_aug.data.readers import find_pairs
from dpsims_aug.data.writers import write_dataset
from dpsims_aug.label_maps import load_label_map
from dpsims_aug.labels import embedded_label_space
from dpsims_aug.metrics.colour import ColourStatistics, compare
from dpsims_aug.synthesis import Synthesizer, default_checkpoint_path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Held-out embedded scenes (the renderer's own images of their layouts) at the bundle's 64x64."""
    root = tmp_path_factory.mktemp("bundled") / "data"
    write_dataset(root, "ade20k", n_train=1, n_val=16, size=(64, 64), seed=123)
    space = embedded_label_space()
    pairs = find_pairs(root, split="val")
    from PIL import Image

    labels = [load_label_map(lab, space) for _, lab in pairs]
    reals = [np.asarray(Image.open(img).convert("RGB")) for img, _ in pairs]
    return labels, reals


def test_bundled_model_is_deterministic_per_seed_and_varies_across_seeds(scenes):
    labels, _ = scenes
    synth = Synthesizer.from_checkpoint(default_checkpoint_path())
    a = synth.synthesize(labels[:4], [1, 2, 3, 4])
    assert a.shape == (4, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, synth.synthesize(labels[:4], [1, 2, 3, 4]))
    b = synth.synthesize(labels[:4], [11, 12, 13, 14])
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 3  # other seeds, other appearances (0-255 units)


def test_bundled_model_colours_are_in_a_sane_range(scenes):
    """Gross failures the old bundle had (blown-out grass: 6.4% near-white pixels, 24x the real rate) fail here."""
    labels, reals = scenes
    synth = Synthesizer.from_checkpoint(default_checkpoint_path())
    fake, real = ColourStatistics(10), ColourStatistics(10)
    for seed in range(2):
        for image, lab in zip(synth.synthesize(labels, [100 * seed + i for i in range(len(labels))]), labels):
            fake.update(image, lab)
    for image, lab in zip(reals, labels):
        real.update(image, lab)
    out = compare(fake, real)
    assert out["clipped_white_fake"] < 0.03 and out["clipped_black_fake"] < 0.03
    assert 0.7 < out["contrast_ratio"] < 1.4
    assert out["colour_class_distance"] < 40
