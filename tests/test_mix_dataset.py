"""SyntheticMixDataset: the synthetic share of a real + synthetic training set is the number asked for."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("mmseg")

from mmengine.registry import DATASETS  # noqa: E402

import dpsims_aug.mm  # noqa: E402, F401  (registers SyntheticMixDataset, as custom_imports does)
from dpsims_aug.data.writers import write_dataset  # noqa: E402
from dpsims_aug.mm.datasets import SyntheticMixDataset  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def mmseg_scope():
    """Build in mmseg's default scope, as a Runner with ``default_scope = 'mmseg'`` does."""
    from mmengine.registry import DefaultScope
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope("mmseg"):
        yield


CLASSES = ("sky", "cloud", "mountain", "water", "sand", "grass", "tree", "rock", "building", "road")


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> tuple[Path, Path]:
    """Two small embedded datasets: 'real' with 8 training images, 'synthetic' with 24."""
    base = tmp_path_factory.mktemp("mix")
    write_dataset(base / "real", "ade20k", n_train=8, n_val=1, size=(32, 32), seed=1)
    write_dataset(base / "synthetic", "ade20k", n_train=24, n_val=1, size=(32, 32), seed=2)
    return base / "real", base / "synthetic"


def _dataset(root: Path, classes=CLASSES) -> dict:
    return dict(type="BaseSegDataset", data_root=str(root), metainfo=dict(classes=classes),
                data_prefix=dict(img_path="images/training", seg_map_path="annotations/training"),
                img_suffix=".jpg", seg_map_suffix=".png", reduce_zero_label=True,
                pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")])


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.75, 0.9])
def test_share_is_exact_and_every_sample_is_used(roots, share):
    mix = DATASETS.build(dict(type="SyntheticMixDataset", real=_dataset(roots[0]), synthetic=_dataset(roots[1]),
                              synthetic_share=share))
    sources = [mix.source(i) for i in range(len(mix))]
    counts = Counter(which for which, _ in sources)
    assert abs(counts["synthetic"] / len(mix) - share) <= 1 / len(mix)
    real_uses = Counter(i for which, i in sources if which == "real")
    synthetic_uses = Counter(i for which, i in sources if which == "synthetic")
    assert set(real_uses) == set(range(8)) and set(real_uses.values()) == {mix.real_times}
    assert set(synthetic_uses) == set(range(24))  # every synthetic image at least once per pass ...
    assert max(synthetic_uses.values()) - min(synthetic_uses.values()) <= 1  # ... and about equally often


def test_samples_come_from_the_set_the_index_names(roots):
    mix = DATASETS.build(dict(type="SyntheticMixDataset", real=_dataset(roots[0]), synthetic=_dataset(roots[1]),
                              synthetic_share=0.25))
    assert mix.metainfo["classes"] == CLASSES
    first_real, last = mix[0], mix[len(mix) - 1]
    assert mix.source(0)[0] == "real" and Path(first_real["img_path"]).is_relative_to(roots[0])
    assert mix.source(len(mix) - 1)[0] == "synthetic" and Path(last["img_path"]).is_relative_to(roots[1])
    assert first_real["img"].shape == (32, 32, 3)
    with pytest.raises(IndexError):
        mix.source(len(mix))


def test_share_zero_and_one_are_the_single_sets(roots):
    real_only = SyntheticMixDataset(_dataset(roots[0]), _dataset(roots[1]), synthetic_share=0.0)
    assert len(real_only) == 8 and {real_only.source(i)[0] for i in range(8)} == {"real"}
    synthetic_only = SyntheticMixDataset(_dataset(roots[0]), _dataset(roots[1]), synthetic_share=1.0)
    assert len(synthetic_only) == 24 and {synthetic_only.source(i)[0] for i in range(24)} == {"synthetic"}


def test_an_explicit_real_times_keeps_the_share(roots):
    mix = SyntheticMixDataset(_dataset(roots[0]), _dataset(roots[1]), synthetic_share=0.5, real_times=1)
    assert mix.num_real_slots == 8 and mix.num_synthetic_slots == 8  # 8 of the 24 synthetic images per pass


def test_bad_arguments_are_named(roots):
    with pytest.raises(ValueError, match="synthetic_share must be in"):
        SyntheticMixDataset(_dataset(roots[0]), _dataset(roots[1]), synthetic_share=1.5)
    other = tuple(f"c{i}" for i in range(10))
    with pytest.raises(ValueError, match="classes differ"):
        SyntheticMixDataset(_dataset(roots[0]), _dataset(roots[1], classes=other), synthetic_share=0.5)
