"""Issue 29: a pip user gets the whole product. The wheel is built from the sources, checked for what it holds, and
installed alone (no checkout on the path) to walk the README's miniature recipe from another folder: configs by
name, the bundled sample maps and generator, a pool, a trained segmenter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "dpsims_aug", "train_gan", "augment")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:  # a copy: the build writes build/ and *.egg-info next to the sources
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(
            REPO / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                        if (REPO / name).is_dir() else {}))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "--quiet", "--disable-pip-version-check", "-w", str(out)], check=True, timeout=300)
    (found,) = out.glob("dpsims_aug-*.whl")
    return found


def test_the_wheel_holds_configs_samples_model_and_commands(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped_seg = {f"dpsims_aug/_shipped/{p.relative_to(REPO).as_posix()}" for p in (REPO / "augment").rglob("*.py")}
    assert shipped_seg <= names
    gan = {p.relative_to(REPO).as_posix() for p in (REPO / "train_gan/configs").rglob("*.py")}
    assert gan <= names
    samples = {p.relative_to(REPO).as_posix() for p in (REPO / "dpsims_aug/assets/sample_labels").iterdir()}
    assert samples and samples <= names
    assert {"dpsims_aug/assets/embedded_small.safetensors", "dpsims_aug/presets/ade20k.json"} <= names
    assert not any("__pycache__" in n or n.startswith(("tests/", "benchmarks/")) for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "tensorboard" in meta  # the GAN configs' TensorBoard backend is a declared dependency
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "dpsims-aug = dpsims_aug.cli:main" in entry and "train = train_gan.cli:add_train_command" in entry


def test_the_installed_wheel_walks_the_recipe_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--disable-pip-version-check",
                    "--target", str(site), str(wheel)], check=True, timeout=300)
    user = tmp_path / "user"
    user.mkdir()
    # The installed copy first on the path: it shadows this checkout's editable install (its dependencies stay).
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")

    def dpsims(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dpsims_aug", *args], cwd=user, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"dpsims-aug {' '.join(args)}:\n{done.stdout}\n{done.stderr[-3000:]}"
        return done.stdout

    listing = dpsims("configs")
    assert str(site / "dpsims_aug/_shipped/augment") in listing and str(site / "train_gan/configs") in listing
    assert str(REPO) not in listing
    dpsims("generate", "--n", "1", "--out", "demo")  # the bundled sample label maps and generator
    assert len(list((user / "demo/images").rglob("*.jpg"))) == len(
        list((REPO / "dpsims_aug/assets/sample_labels").glob("*.png")))
    dpsims("dataset", "--out", "data", "--train", "4", "--val", "2", "--size", "64")
    dpsims("generate", "--labels", "data", "--split", "train", "--n", "1", "--out", "data_dpsims")
    no_workers = [f"{loader}.{key}" for loader in ("train_dataloader", "val_dataloader")
                  for key in ("num_workers=0", "persistent_workers=False")]
    out = dpsims("seg-train", "fastscnn_embedded_pool", "--data-root", "data", "--max-iters", "2",
                 "--cfg-options", *no_workers)
    assert "trained 2 iterations" in out and "validation: mIoU" in out
    assert (user / "work_dirs/fastscnn_embedded_pool/iter_2.pth").is_file()
    dpsims("train", "embedded_small", "--data-root", "data", "--max-iters", "1", "--cfg-options",
                 "model.generator.preset=tiny", "train_dataloader.num_workers=0",
                 "train_dataloader.persistent_workers=False")
    assert (user / "work_dirs/embedded_small/iter_1.pth").is_file()
