"""Starting a GAN run from an exported generator: weights, class matching by name, errors, the real trainer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import save_generator

from dpsims_aug.checkpoint import (
    CheckpointError,
    file_sha256,
    load_generator_checkpoint,
)
from dpsims_aug.labels import LabelSpace, get_label_space
from train_gan.model import DPSIMSGAN

REPO = Path(__file__).resolve().parents[1]
SMALL_D = dict(decoder_channels=8, max_decoder_channels=16, high_res_channels=8)


def _gan(seed: int, preset: str = "tiny", **kwargs) -> DPSIMSGAN:
    torch.manual_seed(seed)
    return DPSIMSGAN(generator=dict(preset=preset), discriminator=SMALL_D, loss=dict(nce_patches=16), **kwargs)


def _export(model: DPSIMSGAN, path: Path) -> Path:
    return save_generator(path, model.generator, model.label_space)


def test_same_dataset_copies_every_weight_into_generator_and_ema(tmp_path):
    source = _gan(seed=1)
    path = _export(source, tmp_path / "g.safetensors")
    fresh = _gan(seed=2)
    started = _gan(seed=2, init_generator=str(path))
    expected = source.generator.state_dict()
    for module in (started.generator, started.generator_ema.module):
        for key, value in module.state_dict().items():
            assert torch.equal(value, expected[key]), key
    # and it is not the init it would have had anyway
    assert not torch.equal(fresh.generator.embed.weight, started.generator.embed.weight)


def test_other_dataset_matches_embedding_rows_by_class_name(tmp_path):
    source = _gan(seed=1)
    path = _export(source, tmp_path / "g.safetensors")
    embedded = get_label_space("embedded")
    # A target dataset with the source's classes reversed, one renamed (new to the generator) and one fewer.
    names = list(reversed(embedded.class_names))[:-1]
    names[2] = "lighthouse"
    target = LabelSpace(name="target", class_names=tuple(names), palette=embedded.palette[: len(names)],
                        raw_ids=tuple(range(1, len(names) + 1)), raw_ignore=(0,))
    fresh = _gan(seed=2, label_space=target)
    started = _gan(seed=2, label_space=target, init_generator=str(path))
    src = source.generator.embed.weight
    dst = started.generator.embed.weight
    for c, name in enumerate(names):
        if name == "lighthouse":
            assert torch.equal(dst[c], fresh.generator.embed.weight[c])  # a new class keeps the random init
        else:
            assert torch.equal(dst[c], src[embedded.class_names.index(name)]), name
    assert torch.equal(dst[-1], src[-1])  # unlabelled
    others = {k: v for k, v in source.generator.state_dict().items() if k != "embed.weight"}
    assert all(torch.equal(started.generator.state_dict()[k], v) for k, v in others.items())


def test_architecture_mismatch_names_the_field(tmp_path):
    path = _export(_gan(seed=1, preset="tiny"), tmp_path / "tiny.safetensors")
    with pytest.raises(CheckpointError, match=r"tiny\.safetensors.*base_channels"):
        _gan(seed=2, preset="small", init_generator=str(path))
    with pytest.raises(CheckpointError, match="not found"):
        _gan(seed=2, init_generator=str(tmp_path / "missing.safetensors"))


def test_trainer_fine_tunes_from_the_bundled_generator(tmp_path):
    """The shipped config, started from the bundled model through ``--cfg-options`` and the real Runner."""
    from dpsims_aug.data.writers import write_dataset

    write_dataset(tmp_path / "data", "ade20k", n_train=4, n_val=2, size=(64, 64), seed=0)
    bundled = REPO / "dpsims_aug" / "assets" / "embedded_small.safetensors"
    result = subprocess.run(
        [sys.executable, "-m", "train_gan.train", str(REPO / "train_gan/configs/embedded_small.py"),
         "--work-dir", str(tmp_path / "run"), "--max-iters", "1", "--cfg-options",
         f"train_dataloader.dataset.data_root={tmp_path / 'data'}", "train_dataloader.batch_size=2",
         "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
         f"custom_hooks.1.dataset.data_root={tmp_path / 'data'}", f"model.init_generator={bundled}"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "generator initialized from" in result.stdout + result.stderr
    assert "new (random init): none" in result.stdout + result.stderr
    exported = load_generator_checkpoint(tmp_path / "run" / "generator_ema.safetensors")
    assert exported.summary["initialized_from"] == dict(file=bundled.name, sha256=file_sha256(bundled))


def test_generator_warmup_updates_only_the_discriminator_first():
    from mmengine.optim import OptimWrapper, OptimWrapperDict

    model = _gan(seed=0, generator_warmup_iters=2)
    wrappers = OptimWrapperDict(
        generator=OptimWrapper(torch.optim.Adam(model.generator.parameters(), 1e-3)),
        discriminator=OptimWrapper(torch.optim.Adam(list(model.discriminator.trainable_parameters()), 1e-3)))
    data = dict(image=torch.randint(0, 255, (2, 3, 64, 64)).float(), label=torch.randint(0, 10, (2, 64, 64)))

    def weights(module):
        return [p.detach().clone() for p in module.parameters() if p.requires_grad]

    def ema_weights():
        return [p.detach().clone() for p in model.generator_ema.module.parameters()]

    g0, d0, ema0 = weights(model.generator), weights(model.discriminator), ema_weights()
    assert ema0
    for _ in range(2):
        out = model.train_step(data, wrappers)
    assert "loss_g" in out  # still logged
    assert all(torch.equal(a, b) for a, b in zip(g0, weights(model.generator)))
    assert all(torch.equal(a, b) for a, b in zip(ema0, ema_weights()))
    assert not all(torch.equal(a, b) for a, b in zip(d0, weights(model.discriminator)))
    model.train_step(data, wrappers)  # step 3: the generator trains
    assert not all(torch.equal(a, b) for a, b in zip(g0, weights(model.generator)))
