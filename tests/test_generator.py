"""Tests of the DP-SIMS generator (dpsims_aug.models): shapes, presets, seeding, ignore handling, gradients,
inference folding, input validation and config serialization. CPU only, tiny sizes."""

from __future__ import annotations

import json

import pytest
import torch

from dpsims_aug.models import (
    GENERATOR_PRESETS,
    DPSIMSGenerator,
    GeneratorConfig,
    generator_config,
    sample_noise,
)


def _make(preset: str = "tiny", seed: int = 0, **overrides) -> DPSIMSGenerator:
    torch.manual_seed(seed)
    return DPSIMSGenerator(generator_config(preset, **overrides))


def _labels(cfg: GeneratorConfig, b: int = 2, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # Blocky layouts (as real label maps are), with some ignore pixels.
    coarse = torch.randint(0, cfg.num_classes, (b, h // 8, w // 8), generator=gen)
    labels = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2)
    labels[:, :8, :8] = cfg.ignore_index
    return labels


def _edges(labels: torch.Tensor) -> torch.Tensor:
    e = torch.zeros(labels.shape[0], 1, *labels.shape[1:])
    e[:, :, :, 1:] += (labels[:, None, :, 1:] != labels[:, None, :, :-1]).float()
    e[:, :, 1:, :] += (labels[:, None, 1:, :] != labels[:, None, :-1, :]).float()
    return e.clamp_(max=1)


def _warm_up_batch_norm(g: DPSIMSGenerator, cfg: GeneratorConfig, steps: int = 3) -> None:
    """Run a few train-mode forwards so BN running statistics are far from their (0, 1) init."""
    g.train()
    with torch.no_grad():
        for i in range(steps):
            lab = _labels(cfg, seed=100 + i)
            g(lab, g.sample_noise([i, i + 50]), _edges(lab) if cfg.use_instance_edges else None)
    g.eval()


@pytest.mark.parametrize("preset", ["ade20k", "coco_stuff", "cityscapes"])
def test_paper_presets_have_oasis_like_capacity(preset: str) -> None:
    cfg = generator_config(preset)
    assert cfg.stride == 32
    g = DPSIMSGenerator(cfg)  # built but not run at 256x256 (too slow for a unit test)
    n = sum(p.numel() for p in g.parameters())
    assert 30e6 < n < 100e6, n
    assert g.embed.num_embeddings == cfg.num_classes + 1


def test_small_presets_param_budget() -> None:
    counts = {}
    for name in ("small", "tiny"):
        counts[name] = sum(p.numel() for p in DPSIMSGenerator(generator_config(name)).parameters())
    assert 1e6 <= counts["small"] <= 4.5e6, counts
    assert counts["tiny"] < 0.3e6, counts


@pytest.mark.parametrize("preset,h,w", [("tiny", 64, 64), ("tiny", 32, 96), ("small", 64, 128)])
def test_forward_shape_and_range(preset: str, h: int, w: int) -> None:
    g = _make(preset).eval()
    cfg = g.config
    lab = _labels(cfg, b=2, h=h, w=w)
    with torch.no_grad():
        out = g(lab, g.sample_noise([1, 2]), _edges(lab) if cfg.use_instance_edges else None)
    assert out.shape == (2, 3, h, w) and out.dtype == torch.float32
    assert out.abs().max() <= 1 and torch.isfinite(out).all()


def test_paper_preset_forward_small_input() -> None:
    g = _make("coco_stuff").eval()  # ade20k's architecture plus instance edges
    lab = _labels(g.config, b=1, h=64, w=64)
    with torch.no_grad():
        out = g(lab, g.sample_noise([0]), _edges(lab))
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_seed_determinism_and_batch_independence() -> None:
    g = _make().eval()
    lab = _labels(g.config, b=3)
    with torch.no_grad():
        a = g(lab, g.sample_noise([7, 8, 9]))
        b = g(lab, g.sample_noise([7, 8, 9]))
        c = g(lab, g.sample_noise([17, 18, 19]))
        single = g(lab[1:2], g.sample_noise([8]))
        reordered = g(lab[[2, 1]], g.sample_noise([9, 8]))
    assert torch.equal(a, b)
    assert (a - c).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every image changes with its seed
    # Different batch compositions may pick different conv kernels: equal up to float rounding.
    torch.testing.assert_close(single[0], a[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(reordered[1], a[1], rtol=1e-5, atol=1e-5)


def test_sample_noise_is_per_seed() -> None:
    batch = sample_noise([3, 4, 5], 4, 16)
    assert batch.shape == (3, 4, 16)
    assert torch.equal(batch[1], sample_noise([4], 4, 16)[0])
    assert not torch.equal(batch[0], batch[1])
    bf = sample_noise([3], 4, 16, dtype=torch.bfloat16)
    assert bf.dtype == torch.bfloat16 and torch.equal(bf[0], batch[0].bfloat16())
    g = _make()
    assert g.sample_noise([3]).shape == (1, g.config.num_noise_tokens, g.config.noise_dim)


def test_ignore_pixels_are_seen_not_class_zero() -> None:
    g = _make().eval()
    lab = _labels(g.config, b=1)
    assert (lab == g.config.ignore_index).any()
    as_zero = lab.masked_fill(lab == g.config.ignore_index, 0)
    z = g.sample_noise([0])
    with torch.no_grad():
        assert not torch.allclose(g(lab, z), g(as_zero, z))


def test_every_parameter_gets_gradient() -> None:
    g = _make(use_instance_edges=True).train()
    lab = _labels(g.config, b=2)
    out = g(lab, g.sample_noise([0, 1]), _edges(lab))
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("overrides", [dict(use_instance_edges=True), dict(decoder_norm="group")])
def test_prepare_for_inference_matches_eval_model(overrides: dict) -> None:
    g = _make(**overrides)
    cfg = g.config
    _warm_up_batch_norm(g, cfg)
    lab = _labels(cfg, b=2, seed=5)
    edges = _edges(lab) if cfg.use_instance_edges else None
    z = g.sample_noise([11, 12])
    with torch.no_grad():
        ref = g(lab, z, edges)
    g.prepare_for_inference()
    assert not any("parametrizations" in n for n, _ in g.named_parameters())
    if cfg.decoder_norm == "batch":
        assert all(block.folded for block in g.decoder)
    assert g.stem.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fused = g(lab, z, edges)
    torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-5)


def test_bfloat16_inference_is_close_to_float32() -> None:
    g = _make()
    _warm_up_batch_norm(g, g.config)
    lab = _labels(g.config, b=1)
    z = g.sample_noise([0])
    with torch.inference_mode():
        ref = g.prepare_for_inference()(lab, z)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = g(lab, z)
        cast = g.prepare_for_inference(dtype=torch.bfloat16)(lab, z)
    assert cast.dtype == torch.bfloat16 and g.embed.weight.dtype == torch.bfloat16
    for out in (auto, cast):
        assert out.shape == (1, 3, 64, 64)
        assert (out.float() - ref).abs().mean() < 0.02


def test_size_must_be_multiple_of_stride() -> None:
    g = _make().eval()
    lab = torch.zeros(1, 48, 64, dtype=torch.long)
    with pytest.raises(ValueError, match=r"48x64.*multiples of 32"):
        g(lab, g.sample_noise([0]))


def test_bad_label_ids_are_named() -> None:
    g = _make().eval()
    lab = _labels(g.config, b=1)
    lab[0, 20, 20] = g.config.num_classes  # one past the last class
    lab[0, 30, 30] = -3
    with pytest.raises(ValueError, match=r"\[-3, 8\]"):
        g(lab, g.sample_noise([0]))
    with pytest.raises(ValueError, match="integer"):
        g(lab.float(), g.sample_noise([0]))


def test_noise_and_edge_validation() -> None:
    g = _make().eval()
    lab = _labels(g.config, b=2)
    with pytest.raises(ValueError, match="noise must be"):
        g(lab, g.sample_noise([0]))
    with pytest.raises(ValueError, match="use_instance_edges=False"):
        g(lab, g.sample_noise([0, 1]), _edges(lab))
    ge = _make(use_instance_edges=True).eval()
    with pytest.raises(ValueError, match="instance edges"):
        ge(lab, ge.sample_noise([0, 1]))


def test_config_round_trip_and_validation() -> None:
    for name in GENERATOR_PRESETS:
        cfg = generator_config(name)
        restored = GeneratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert restored == cfg
    assert generator_config("tiny", num_classes=3).num_classes == 3
    with pytest.raises(ValueError, match="ade20k"):
        generator_config("nope")
    with pytest.raises(ValueError, match="unknown GeneratorConfig keys"):
        GeneratorConfig.from_dict({"num_classes": 3, "bogus": 1})
    with pytest.raises(ValueError, match="ignore_index"):
        GeneratorConfig(num_classes=10, ignore_index=0)


def test_prepare_for_inference_on_a_deep_copy_leaves_the_original_intact() -> None:
    """A copy shares torch's injected parametrization class with its original: removing spectral norm from the
    copy must not take the original's weights away (it used to raise AttributeError on the next copy)."""
    import copy

    torch.manual_seed(0)
    g = DPSIMSGenerator(generator_config("tiny", num_classes=10))
    labels = torch.randint(0, 10, (2, 32, 32))
    g(labels, g.sample_noise([0, 1])).mean().backward()
    first = copy.deepcopy(g).prepare_for_inference()
    second = copy.deepcopy(g).prepare_for_inference()  # the original still has its spectral norms
    g.eval()
    with torch.no_grad():
        reference = g(labels, g.sample_noise([0, 1]))
        for fused in (first, second):
            assert torch.allclose(fused(labels, fused.sample_noise([0, 1])), reference, atol=1e-5)


def test_class_codes_give_each_class_its_own_appearance_code() -> None:
    plain = _make()
    assert "class_code_proj.weight" not in plain.state_dict()  # off by default: checkpoints unchanged
    g = _make(class_codes=True)
    cfg = g.config
    assert cfg.noise_tokens == cfg.num_noise_tokens + cfg.num_classes + 1
    _warm_up_batch_norm(g, cfg)
    lab = torch.zeros(1, 64, 64, dtype=torch.long)
    lab[:, 32:] = 1  # class 0 above, class 1 below
    noise = g.sample_noise([5])
    with torch.no_grad():
        base = g(lab, noise)
        assert torch.equal(base, g(lab, g.sample_noise([5])))  # seeded
        moved = noise.clone()
        moved[:, cfg.num_noise_tokens + 1] = torch.randn(cfg.noise_dim)  # a new code for class 1 only
        changed = (g(lab, moved) - base).abs().mean(dim=1)[0]
        unused = noise.clone()
        unused[:, cfg.num_noise_tokens + 5] += 3.0  # the code of a class absent from the map
        assert torch.equal(g(lab, unused), base)
    # The new code of class 1 changes class 1's pixels far more than class 0's (receptive fields leak a little).
    assert changed[40:].mean() > 3 * changed[:24].mean()
    with pytest.raises(ValueError, match="noise must be"):
        g(lab, plain.sample_noise([5]))
