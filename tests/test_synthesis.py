"""Synthesizer: seeds, batch-size independence, size padding policy, id validation, checkpoint loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import save_generator, tiny_generator

from dpsims_aug.checkpoint import CheckpointError, GeneratorCheckpoint, save_generator_checkpoint
from dpsims_aug.labels import LabelMapError, embedded_label_space
from dpsims_aug.models import DPSIMSGenerator, generator_config
from dpsims_aug.synthesis import Synthesizer, default_checkpoint_path, derive_seed

SPACE = embedded_label_space()


@pytest.fixture(scope="module")
def generator() -> DPSIMSGenerator:
    return tiny_generator()


@pytest.fixture(scope="module")
def checkpoint(generator, tmp_path_factory):
    return save_generator(tmp_path_factory.mktemp("ckpt") / "g.safetensors", generator)


@pytest.fixture(scope="module")
def synth(checkpoint) -> Synthesizer:
    return Synthesizer.from_checkpoint(checkpoint, batch_size=4)


def _labels(n: int, h: int = 64, w: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    maps = [rng.integers(0, SPACE.num_classes, (h, w)).astype(np.uint8) for _ in range(n)]
    for m in maps:
        m[:4] = SPACE.ignore_index
    return maps


def test_derive_seed_is_a_pure_63_bit_function():
    s = derive_seed(0, "a/b.png", 3)
    assert s == derive_seed(0, "a/b.png", 3) and 0 <= s < 2**63
    assert len({s, derive_seed(1, "a/b.png", 3), derive_seed(0, "a/c.png", 3), derive_seed(0, "a/b.png", 2)}) == 4


def test_output_does_not_depend_on_how_images_are_batched(synth):
    labels = _labels(3)
    seeds = [derive_seed(0, f"m{i}", 0) for i in range(3)]
    together = synth.synthesize(labels, seeds)
    one_by_one = np.concatenate([synth.synthesize([lab], [s]) for lab, s in zip(labels, seeds)])
    assert together.shape == (3, 64, 64, 3) and together.dtype == np.uint8
    np.testing.assert_array_equal(together, one_by_one)
    # Same label, other seed -> another image; same seed -> the same image.
    other = synth.synthesize([labels[0]], [seeds[0] + 1])
    assert not np.array_equal(other[0], together[0])
    np.testing.assert_array_equal(synth(torch.from_numpy(np.stack(labels)), seeds), together)


def test_sizes_that_are_not_multiples_of_the_stride_are_padded_with_ignore(synth):
    label = _labels(1, 50, 70)[0]
    out = synth.synthesize([label], [7])
    assert out.shape == (1, 50, 70, 3)
    padded = np.full((64, 96), SPACE.ignore_index, np.uint8)
    padded[:50, :70] = label
    np.testing.assert_array_equal(out[0], synth.synthesize([padded], [7])[0, :50, :70])


def test_unknown_ids_are_refused_with_ids_and_source(synth):
    bad = _labels(1)[0]
    bad[10, 10], bad[11, 11] = 10, 200
    with pytest.raises(LabelMapError, match=r"maps/x.png: contiguous label ids \{10, 200\}"):
        synth.synthesize([bad], [0], sources=["maps/x.png"])
    with pytest.raises(ValueError, match="seeds"):
        synth.synthesize(_labels(2), [0])
    with pytest.raises(ValueError, match="share one size"):
        synth.synthesize([_labels(1)[0], _labels(1, 32, 32)[0]], [0, 1])


def test_from_checkpoint_matches_in_memory_model(generator, synth):
    fused = DPSIMSGenerator(generator.config)
    fused.load_state_dict(generator.state_dict())
    memory = Synthesizer(fused.prepare_for_inference(), SPACE, batch_size=4)
    labels, seeds = _labels(2), [1, 2]
    np.testing.assert_array_equal(memory.synthesize(labels, seeds), synth.synthesize(labels, seeds))
    assert synth.label_space == SPACE and synth.config == generator.config
    assert len(synth.checkpoint_sha256) == 64


def test_bf16_autocast_is_close_to_fp32(checkpoint, synth):
    half = Synthesizer.from_checkpoint(checkpoint, dtype="bf16", batch_size=4)
    labels, seeds = _labels(1), [3]
    diff = np.abs(half.synthesize(labels, seeds).astype(int) - synth.synthesize(labels, seeds).astype(int))
    assert diff.mean() < 8


def test_bad_checkpoints_and_mismatched_spaces(checkpoint, generator, tmp_path):
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="t.safetensors"):
        Synthesizer.from_checkpoint(truncated)
    wrong = tmp_path / "w.safetensors"
    state = {k: v for k, v in generator.state_dict().items() if not k.startswith("to_rgb")}
    save_generator_checkpoint(wrong, GeneratorCheckpoint(state, generator.config.to_dict(), SPACE))
    with pytest.raises(CheckpointError, match="do not match"):
        Synthesizer.from_checkpoint(wrong)
    other = DPSIMSGenerator(generator_config("tiny", num_classes=3))
    with pytest.raises(ValueError, match="3 classes"):
        Synthesizer(other, SPACE)


def test_default_checkpoint_lives_in_the_package_assets():
    path = default_checkpoint_path()
    assert path.name == "embedded_small.safetensors" and path.parent.name == "assets"


def test_big_maps_run_fewer_images_per_forward(checkpoint):
    """A forward holds at most ``max_batch_pixels`` label-map pixels: big maps (a 2048x1024 Cityscapes map) run alone,
    small ones keep the batch size; the default limit is 8 images of 512x512."""
    from dpsims_aug.synthesis import DEFAULT_MAX_BATCH_PIXELS

    synth = Synthesizer.from_checkpoint(checkpoint, batch_size=8)
    assert synth.max_batch_pixels == DEFAULT_MAX_BATCH_PIXELS == 8 * 512 * 512
    assert synth.batch_size_for(64, 64) == synth.batch_size_for(512, 512) == 8
    assert synth.batch_size_for(512, 683) == 5 and synth.batch_size_for(1024, 2048) == 1
    assert synth.batch_size_for(4096, 4096) == 1  # never 0
    assert Synthesizer.from_checkpoint(checkpoint, batch_size=8, max_batch_pixels=None).batch_size_for(1024, 2048) == 8
    with pytest.raises(ValueError, match="max_batch_pixels"):
        Synthesizer.from_checkpoint(checkpoint, max_batch_pixels=0)


def test_a_pixel_limited_batch_is_the_same_forward_as_that_batch_size(checkpoint):
    """The limit only changes how many images share a forward: with room for 2 maps of 64x64 per forward, the images
    are those of ``batch_size=2`` (the determinism contract), and the model is called with 2 images at a time."""
    labels, seeds = _labels(3), [11, 12, 13]
    limited = Synthesizer.from_checkpoint(checkpoint, batch_size=8, max_batch_pixels=2 * 64 * 64)
    shapes = []
    hook = limited.generator.register_forward_pre_hook(lambda module, args: shapes.append(args[0].shape[0]))
    try:
        images = limited.synthesize(labels, seeds)
    finally:
        hook.remove()
    assert shapes == [2, 2]  # 2 + 1 padded to 2
    pairs = Synthesizer.from_checkpoint(checkpoint, batch_size=2, max_batch_pixels=None).synthesize(labels, seeds)
    np.testing.assert_array_equal(images, pairs)
