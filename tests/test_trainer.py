"""The GAN trainer through mmengine's real Runner: training, exact resume, DDP, safety nets and export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dpsims_aug.checkpoint import CheckpointError, load_generator_checkpoint
from dpsims_aug.data.writers import write_dataset
from dpsims_aug.mm.checkpoints import load_mmengine_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY_OVERRIDES = """
model = dict(
    generator=dict(preset="tiny"),
    discriminator=dict(decoder_channels=8, max_decoder_channels=16, high_res_channels=8),
    # Every loss term on, whatever the shipped config switches off.
    loss=dict(patch_nce=1.0, nce_patches=16, colour_match=1.0),
)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
train_cfg = dict(max_iters=4)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
custom_hooks = [
    dict(type="GANCheckpointHook"),
    dict(type="SampleGridHook", interval=2, num_images=2, num_seeds=2),  # held out: the training data's val split
    dict(type="GANEvaluationHook", interval=2, num_images=4, num_seeds=1, batch_size=4,
         dataset=dict(data_root=data_root)),  # an override of the derived held-out config
    dict(type="ExportGeneratorHook"),
]
"""


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    """A config inheriting the shipped embedded config, shrunk to the tiny generator and 4 iterations."""
    root = tmp_path_factory.mktemp("trainer")
    write_dataset(root / "data", "ade20k", n_train=8, n_val=4, size=(64, 64), seed=0)
    config = root / "tiny.py"
    config.write_text(
        f'_base_ = ["{REPO / "train_gan/configs/embedded_small.py"}"]\n'
        f'data_root = "{root / "data"}"\n' + TINY_OVERRIDES
    )
    return config


def _train(config: Path, work_dir: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "train_gan.train", str(config), "--work-dir", str(work_dir), *extra],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _losses(work_dir: Path) -> dict[int, dict[str, float]]:
    """Per-iteration losses from every run (timestamped folder) in a work dir."""
    out: dict[int, dict[str, float]] = {}
    for scalars in sorted(work_dir.glob("*/vis_data/scalars.json")):
        for line in scalars.read_text().splitlines():
            record = json.loads(line)
            if "iter" not in record:  # evaluation rows (FID) are keyed by step
                continue
            out[record["iter"]] = {k: v for k, v in record.items() if k.startswith("loss")}
    return out


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_train_resume_is_exact_and_exports(tiny_config, tmp_path, channels_last):
    fmt = ("--cfg-options", f"model.channels_last={channels_last}")
    straight = tmp_path / "straight"
    _train(tiny_config, straight, *fmt)
    # Interrupted after iteration 2 (its checkpoint), then resumed to 4.
    interrupted = tmp_path / "interrupted"
    _train(tiny_config, interrupted, "--max-iters", "2", *fmt)
    _train(tiny_config, interrupted, "--resume", *fmt)

    expected, resumed = _losses(straight), _losses(interrupted)
    assert sorted(expected) == [1, 2, 3, 4]
    for it in (3, 4):
        assert resumed[it] == expected[it], f"iteration {it} differs after resume"
    assert {"loss_d_adv", "loss_d_labelmix", "loss_g_adv", "loss_g_nce", "loss_g_div",
            "loss_g_colour"} <= set(expected[4])

    # The exported generator loads without pickle and equals the EMA weights of the last checkpoint.
    export = load_generator_checkpoint(straight / "generator_ema.safetensors")
    assert export.label_space.name == "embedded" and export.summary["iterations"] == 4
    ckpt = load_mmengine_checkpoint(straight / "iter_4.pth")  # weights_only=True, mmengine's classes allowed
    for key, value in export.state_dict.items():
        assert torch.equal(value, ckpt["state_dict"][f"generator_ema.module.{key}"]), key
    # `dpsims-aug export` turns any training checkpoint into the same inference file.
    from train_gan.export import export_training_checkpoint

    exported = export_training_checkpoint(straight / "iter_4.pth", tmp_path / "exported.safetensors")
    reloaded = load_generator_checkpoint(tmp_path / "exported.safetensors")
    assert reloaded.generator_config == export.generator_config and reloaded.label_space == export.label_space
    assert all(torch.equal(reloaded.state_dict[k], v) for k, v in export.state_dict.items())
    assert exported.summary["iterations"] == 4
    # ... and so does the console command (train_gan's subcommand, found through the entry point group).
    from dpsims_aug.cli import main as cli_main

    assert cli_main(["export", str(straight / "iter_4.pth"), "--out", str(tmp_path / "cli.safetensors")]) == 0
    from_cli = load_generator_checkpoint(tmp_path / "cli.safetensors")
    assert all(torch.equal(from_cli.state_dict[k], v) for k, v in export.state_dict.items())
    # Half-precision export (the bundled model): float16 on disk, loads into the float32 Synthesizer.
    from dpsims_aug.synthesis import Synthesizer

    export_training_checkpoint(straight / "iter_4.pth", tmp_path / "half.safetensors", dtype=torch.float16)
    half = load_generator_checkpoint(tmp_path / "half.safetensors")
    assert all(v.dtype == torch.float16 for v in half.state_dict.values() if v.is_floating_point())
    image = Synthesizer.from_checkpoint(tmp_path / "half.safetensors").synthesize([np.zeros((64, 64), np.uint8)], [0])
    assert image.shape == (1, 64, 64, 3) and image.dtype == np.uint8
    with pytest.raises(CheckpointError, match="not a dpsims-aug training checkpoint"):
        torch.save({"state_dict": {}}, tmp_path / "foreign.pth")
        export_training_checkpoint(tmp_path / "foreign.pth", tmp_path / "x.safetensors")
    # Checkpoint writes are atomic: no temporary files left; sample grids were written.
    assert not list(straight.glob(".*tmp*"))
    assert len(list(straight.glob("*/samples/iter_*.png"))) == 2
    # The evaluation hook computed FID of EMA samples at iterations 2 and 4 inside the real Runner.
    evaluations = [json.loads(line) for line in next(straight.glob("*/metrics.jsonl")).read_text().splitlines()]
    assert [e["iter"] for e in evaluations] == [2, 4]
    assert all(e["kid"] > 10 * max(e["kid_floor"], 1e-3) for e in evaluations)  # 4 iterations: far from real


def test_corrupt_checkpoint_is_named_on_resume(tiny_config, tmp_path):
    work = tmp_path / "run"
    _train(tiny_config, work, "--max-iters", "2")
    ckpt = work / "iter_2.pth"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    result = _train(tiny_config, work, "--resume", check=False)
    assert result.returncode != 0
    assert f"cannot resume from {ckpt}" in result.stderr and "truncated" in result.stderr


def test_resume_survives_a_torn_last_checkpoint_pointer(tiny_config, tmp_path):
    """mmengine writes `last_checkpoint` with a plain open(); killed in that instant it is empty. Resume then
    falls back to the newest checkpoint on disk instead of silently starting over."""
    work = tmp_path / "run"
    _train(tiny_config, work, "--max-iters", "2")
    (work / "last_checkpoint").write_text("")
    _train(tiny_config, work, "--resume")
    assert (work / "iter_4.pth").is_file()
    second_run = sorted(work.glob("*/vis_data/scalars.json"))[-1]
    iterations = [json.loads(line).get("iter") for line in second_run.read_text().splitlines()]
    assert [i for i in iterations if i is not None] == [3, 4]  # continued from iteration 2, not started over


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs gloo")
def test_two_process_ddp_keeps_ranks_identical(tiny_config, tmp_path):
    """Real 2-process DDP on CPU (gloo, torchrun): after the steps both ranks hold identical weights."""
    work = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
         str(REPO / "tests" / "ddp_rank_weights.py"), str(tiny_config), str(work)],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rank0 = torch.load(work / "rank0.pt", weights_only=True)
    rank1 = torch.load(work / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    start = torch.load(work / "rank0_start.pt", weights_only=True)
    changed = [k for k in rank0 if rank0[k].is_floating_point() and not torch.equal(rank0[k], start[k])]
    assert any(k.startswith("generator.") for k in changed) and any(k.startswith("discriminator.") for k in changed)
    # The EMA's buffers (BatchNorm statistics, spectral-norm vectors) are re-collected by the main rank alone, right
    # before it saves, samples or exports (the next update copies the live ones again on every rank).
    ema_buffers = {f"generator_ema.module.{name}" for name, _ in _tiny_gan().generator_ema.module.named_buffers()}
    assert ema_buffers and ema_buffers <= set(rank0)
    for key in rank0:
        if key not in ema_buffers:
            assert torch.equal(rank0[key], rank1[key]), f"ranks differ at {key}"


def _tiny_gan(**options):
    from mmengine.registry import MODELS

    import train_gan  # noqa: F401

    return MODELS.build(
        dict(
            type="DPSIMSGAN", label_space="embedded",
            discriminator=dict(decoder_channels=8, max_decoder_channels=16, high_res_channels=8),
            loss=dict(nce_patches=16), max_nonfinite_steps=3, **{"generator": dict(preset="tiny"), **options},
        )
    )


def _optim(model):
    from train_gan.optim import PerModuleOptimWrapperConstructor

    cfg = dict(
        generator=dict(optimizer=dict(type="Adam", lr=1e-4, betas=(0.0, 0.999))),
        discriminator=dict(optimizer=dict(type="Adam", lr=4e-4, betas=(0.0, 0.999))),
    )
    return PerModuleOptimWrapperConstructor(cfg)(model)


def test_optimizers_exclude_the_frozen_backbone():
    model = _tiny_gan()
    optim = _optim(model)
    d_params = {id(p) for g in optim["discriminator"].optimizer.param_groups for p in g["params"]}
    g_params = {id(p) for g in optim["generator"].optimizer.param_groups for p in g["params"]}
    backbone = {id(p) for p in model.discriminator.backbone.parameters()}
    assert backbone and not (backbone & d_params) and not (backbone & g_params)
    assert g_params == {id(p) for p in model.generator.parameters()}
    assert d_params == {id(p) for p in model.discriminator.parameters()} - backbone


def test_channels_last_is_the_same_step_in_another_memory_format():
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, 10, (2, 64, 64)))
    data = {"image": torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8), "label": labels}
    logs, models = {}, {}
    for channels_last in (False, True):
        torch.manual_seed(0)
        models[channels_last] = model = _tiny_gan(channels_last=channels_last)
        logs[channels_last] = model.train_step(data, _optim(model))
    for key, value in logs[False].items():  # the first step starts from equal weights: equal up to rounding
        assert torch.allclose(logs[True][key], value, rtol=1e-4, atol=1e-5), key
    model = models[True]
    convs = [p for m in (model.generator, model.generator_ema, model.discriminator) for p in m.parameters()
             if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)  # kept after the update
    assert all(p.is_contiguous() for p in models[False].generator.parameters())


def test_non_finite_steps_are_skipped_then_stop_the_run():
    torch.manual_seed(0)
    model = _tiny_gan()
    optim = _optim(model)
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, 10, (2, 64, 64)))
    good = {"image": torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8), "label": labels}
    bad = {"image": torch.full((2, 3, 64, 64), float("nan")), "label": labels}
    for _ in range(2):  # after two updates the EMA differs from the live generator
        model.train_step(good, optim)
    ema_gap = [(e - g).abs().max() for e, g in zip(model.generator_ema.module.parameters(),
                                                   model.generator.parameters())]
    assert max(ema_gap) > 0
    before = {k: p.detach().clone() for k, p in model.named_parameters()}  # the EMA's parameters included
    for _ in range(2):
        model.train_step(bad, optim)  # skipped, not applied
    after = dict(model.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in before), "a non-finite step changed the weights"
    with pytest.raises(FloatingPointError, match="3 consecutive steps with non-finite losses"):
        model.train_step(bad, optim)


def test_held_out_dataset_is_the_training_datas_val_split():
    from types import SimpleNamespace

    from mmengine.config import Config

    from train_gan.hooks import held_out_dataset

    train = dict(type="SegPairDataset", data_root="d", label_space="embedded", split="train", flip=True,
                 scale_range=(1.0, 1.25), max_samples=16)
    runner = SimpleNamespace(cfg=Config(dict(train_dataloader=dict(dataset=train))))
    assert held_out_dataset(runner, None) == dict(type="SegPairDataset", data_root="d", label_space="embedded",
                                                  split="val", flip=False, scale_range=(1.0, 1.0), class_recolour=0.0)
    assert held_out_dataset(runner, dict(data_root="v"))["data_root"] == "v"
    assert held_out_dataset(runner, dict(type="Other", x=1)) == dict(type="Other", x=1)


def test_a_train_step_with_per_class_codes_updates_their_projection():
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, 10, (2, 64, 64)))
    data = {"image": torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8), "label": labels}
    torch.manual_seed(0)
    model = _tiny_gan(generator=dict(preset="tiny", class_codes=True))
    before = model.generator.class_code_proj.weight.detach().clone()
    logs = model.train_step(data, _optim(model))
    assert all(torch.isfinite(v).all() for v in logs.values())
    assert not torch.equal(model.generator.class_code_proj.weight, before)  # the codes are trained


def test_fewshot_config_trains_on_recoloured_images(tmp_path):
    """The shipped few-image config through the real Runner: recoloured training images, real held-out ones."""
    from mmengine.config import Config

    shipped = Config.fromfile(REPO / "train_gan/configs/embedded_fewshot.py")
    assert shipped.train_dataloader.dataset.class_recolour == 0.3 and shipped.train_cfg.max_iters == 1000
    write_dataset(tmp_path / "data", "ade20k", n_train=4, n_val=2, size=(64, 64), seed=0)
    config = tmp_path / "fewshot_tiny.py"
    config.write_text(f'_base_ = ["{REPO / "train_gan/configs/embedded_fewshot.py"}"]\n'
                      f'data_root = "{tmp_path / "data"}"\n' + TINY_OVERRIDES)
    _train(config, tmp_path / "run", "--cfg-options", "train_cfg.max_iters=2")
    cfg = Config.fromfile(next((tmp_path / "run").glob("*/vis_data/config.py")))
    assert cfg.train_dataloader.dataset.class_recolour == 0.3  # what the run trained with
    assert _losses(tmp_path / "run")[2]
