"""Pool file names: built in one place and parsed back by the same module."""

import pytest

from dpsims_aug.pool.format import image_path, label_stem_of


@pytest.mark.parametrize("stem", ["ADE_train_00000001", "training/a_s1_scene", "sub/dir/x_s", "s_s_s"])
@pytest.mark.parametrize("k, suffix", [(0, ".jpg"), (12, ".png")])
def test_the_label_stem_comes_back_from_an_image_path(stem, k, suffix):
    assert label_stem_of(image_path(stem, k, suffix)) == stem
