"""Issue 26: a data root that really moves (``--data-root``, ``--cfg-options data_root=``, ``set_data_root`` for the
segmenter configs), and trainer faults that end in one line instead of a traceback: Ctrl-C, ``--resume`` with nothing
to resume, time-based checkpoints, a missing or broken config, a training checkpoint given to ``generate``, and the
mode of exported files."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from dpsims_aug.checkpoint import CheckpointError, GeneratorCheckpoint, load_generator_checkpoint
from dpsims_aug.config_root import set_data_root

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "train_gan/configs/embedded_small.py"

# The shipped embedded config, shrunk: tiny generator, no workers, checkpoints every 100 iterations only. Every place
# that carries the root points at MISSING, so a run that trains proves the override reached all of them.
TINY = """
_base_ = ["{base}"]
data_root = "{missing}"
model = dict(
    generator=dict(preset="tiny"),
    discriminator=dict(decoder_channels=8, max_decoder_channels=16, high_res_channels=8),
)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=100))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
custom_hooks = [
    dict(type="GANCheckpointHook"),
    dict(type="SampleGridHook", interval=100, num_images=2, num_seeds=1, dataset=dict(data_root=data_root)),
]
"""

# A hook that sends the process a real SIGINT (what Ctrl-C does) before iteration `at + 1`, when SIGINT_AT=1.
SIGINT_HOOK = """
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SigintAtIterHook(Hook):
    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.at and os.environ.get("SIGINT_AT") == "1":
            os.kill(os.getpid(), signal.SIGINT)
"""


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``dpsims-aug ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "dpsims_aug", *args], capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        preexec_fn=_interruptible,
    )


def _interruptible() -> None:
    """Let the child take SIGINT even when pytest runs in the background (``cmd &`` starts it with SIGINT ignored,
    and an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _losses(work_dir: Path) -> dict[int, dict[str, float]]:
    """Per-iteration losses of every run (timestamped folder) in a work dir."""
    out: dict[int, dict[str, float]] = {}
    for scalars in sorted(work_dir.glob("*/vis_data/scalars.json")):
        for line in scalars.read_text().splitlines():
            record = json.loads(line)
            if "iter" in record:
                out[record["iter"]] = {k: v for k, v in record.items() if k.startswith("loss")}
    return out


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A small dataset written by `dpsims-aug dataset` (8 training, 4 validation scenes at 64x64)."""
    from dpsims_aug.cli import main as cli_main

    root = tmp_path_factory.mktemp("data") / "mine"
    assert cli_main(["dataset", "--out", str(root), "--train", "8", "--val", "4", "--size", "64"]) == 0
    return root


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("config")
    config = folder / "tiny.py"
    config.write_text(TINY.format(base=EMBEDDED, missing=folder / "missing"))
    return config


# --- the data root -------------------------------------------------------------------------------------------


def _data_roots(node, where: str = "") -> dict[str, str]:
    """Every ``data_root`` entry of a nested config, by dotted path."""
    found = {}
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else key
            found.update({path: value} if key == "data_root" else _data_roots(value, path))
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            found.update(_data_roots(value, f"{where}.{i}"))
    return found


@pytest.mark.parametrize("option", ["--data-root", "--cfg-options"])
def test_data_root_reaches_every_dataset_of_the_gan_config(option, tmp_path):
    from train_gan.train import build_config, parse_args

    value = ["--data-root", str(tmp_path)] if option == "--data-root" else ["--cfg-options", f"data_root={tmp_path}"]
    cfg = build_config(parse_args([str(EMBEDDED), *value]))
    roots = _data_roots(cfg.to_dict())
    assert roots["train_dataloader.dataset.data_root"] == str(tmp_path)
    assert set(roots.values()) == {str(tmp_path)}
    # An explicit nested key still wins over the root.
    cfg = build_config(parse_args([str(EMBEDDED), "--cfg-options", f"data_root={tmp_path}",
                                   "train_dataloader.dataset.data_root=x"]))
    assert cfg.train_dataloader.dataset.data_root == "x" and cfg.data_root == str(tmp_path)


@pytest.mark.parametrize("option", ["--data-root", "--cfg-options"])
def test_training_reads_the_overridden_data_root(option, tiny_config, data_root, tmp_path):
    work = tmp_path / "run"
    value = ["--data-root", str(data_root)] if option == "--data-root" else ["--cfg-options", f"data_root={data_root}"]
    result = _run("train", str(tiny_config), "--work-dir", str(work), "--max-iters", "1", *value)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The config's own root does not exist: the training data and the sample grid's held-out maps (a hook's
    # dataset override) came from the new root.
    assert (work / "iter_1.pth").is_file() and len(list(work.glob("*/samples/iter_*.png"))) == 1
    dumped = (work / tiny_config.name).read_text()  # the config the Runner ran
    assert "missing" not in dumped and dumped.count(str(data_root)) >= 3


def test_missing_data_root_is_one_line(tiny_config, tmp_path, capsys):
    from train_gan.train import main

    assert main([str(tiny_config), "--work-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing (train_dataloader.dataset.data_root) is not a folder" in err
    assert "--data-root DIR" in err
    assert main([str(tiny_config), "--data-root", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"error: data root {tmp_path / 'nope'} is not a folder\n"


@pytest.mark.parametrize("name", ["fastscnn_embedded_real", "fastscnn_embedded_pool"])
def test_set_data_root_moves_every_dataset_of_a_segmenter_config(name, tmp_path):
    cfg = Config.fromfile(str(REPO / "augment/embedded" / f"{name}.py"))
    new = tmp_path / "mine"
    changed = set_data_root(cfg, new)
    assert {"data_root", "val_dataloader.dataset.data_root", "test_dataloader.dataset.data_root"} <= set(changed)
    roots = _data_roots(cfg.to_dict())
    pool = {k: v for k, v in roots.items() if v == f"{new}_dpsims"}
    assert set(roots.values()) <= {str(new), f"{new}_dpsims"}  # nothing left on the old roots
    loaders = {k: v for k, v in roots.items() if k.split(".")[0].endswith("_dataloader")}
    assert {k.split(".")[0] for k in loaders} == {"train_dataloader", "val_dataloader", "test_dataloader"}
    if name.endswith("_pool"):
        # The real half reads the new root, the offline pool the folder `generate --labels NEW` writes.
        assert cfg.train_dataloader.dataset.real.data_root == str(new)
        assert cfg.train_dataloader.dataset.synthetic.data_root == f"{new}_dpsims" == cfg.pool_root
        assert "train_dataloader.dataset.synthetic.data_root" in pool
        set_data_root(cfg, new, pool_root=tmp_path / "my_pool")
        assert cfg.train_dataloader.dataset.synthetic.data_root == str(tmp_path / "my_pool")
    else:
        assert cfg.train_dataloader.dataset.data_root == str(new)
        assert not any(k.startswith("train_dataloader") for k in pool)


def test_set_data_root_handles_concat_and_refuses_configs_without_a_root():
    cfg = Config(dict(train_dataloader=dict(dataset=dict(type="ConcatDataset", datasets=[
        dict(type="BaseSegDataset", data_root="a"), dict(type="BaseSegDataset", data_root="b/")]))))
    assert set_data_root(cfg, "new/") == ["train_dataloader.dataset.datasets.0.data_root",
                                          "train_dataloader.dataset.datasets.1.data_root"]
    assert [d.data_root for d in cfg.train_dataloader.dataset.datasets] == ["new", "new"]
    with pytest.raises(ValueError, match="no data_root entry"):
        set_data_root(Config(dict(model=dict(type="X"))), "new")


def test_segmenter_reads_the_new_root(data_root):
    """The real segmenter config, moved by set_data_root, builds its mmseg datasets from the new root."""
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(REPO / "augment/embedded/fastscnn_embedded_real.py"))
    set_data_root(cfg, data_root)
    assert len(DATASETS.build(cfg.train_dataloader.dataset)) == 8
    assert len(DATASETS.build(cfg.val_dataloader.dataset)) == 4


# --- Ctrl-C, resume without a checkpoint, time-based checkpoints --------------------------------------------------


@pytest.fixture(scope="module")
def interrupted(tiny_config, data_root, tmp_path_factory) -> dict:
    """Three runs of 4 iterations: one started with --resume on an empty work dir, saving a checkpoint by time
    after every iteration (--checkpoint-minutes 0) and stopped by SIGINT after iteration 3; its printed resume
    command; and an uninterrupted run (iteration interval 100: only the last iteration is saved)."""
    folder = tmp_path_factory.mktemp("interrupted")
    (folder / "sigint_at.py").write_text(SIGINT_HOOK)
    config = folder / "sigint.py"
    config.write_text(
        f'_base_ = ["{tiny_config}"]\n'
        'custom_imports = dict(imports=["train_gan", "train_gan.checkpointing", "sigint_at"])\n'
        'custom_hooks = [dict(type="GANCheckpointHook"), dict(type="SigintAtIterHook", at=3)]\n'
    )
    env = {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    work = folder / "run"
    first = _run("train", str(config), "--work-dir", str(work), "--data-root", str(data_root), "--max-iters", "4",
                 "--checkpoint-minutes", "0", "--resume", env={**env, "SIGINT_AT": "1"})
    words = shlex.split(first.stderr.strip().splitlines()[-1].partition("resume with: ")[2])
    assert words[:2] == ["dpsims-aug", "train"], first.stdout[-3000:] + first.stderr[-3000:]
    resumed = _run(*words[1:], env=env)
    straight = folder / "straight"
    uninterrupted = _run("train", str(config), "--work-dir", str(straight), "--data-root", str(data_root),
                         "--max-iters", "4", env=env)
    for result in (resumed, uninterrupted):
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dict(work=work, first=first, resumed=resumed, straight=straight)


def test_ctrl_c_ends_in_one_line_naming_the_kept_checkpoint(interrupted):
    first, work = interrupted["first"], interrupted["work"]
    assert first.returncode == 130
    assert "Traceback" not in first.stderr + first.stdout and "KeyboardInterrupt" not in first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted at iteration 3; the last checkpoint {work / 'iter_3.pth'} is kept; "
                           f"resume with: dpsims-aug train ")
    assert last.endswith("--resume") and f"--work-dir {work}" in last
    assert not list(work.glob(".*tmp*"))  # nothing half-written left behind


def test_resume_without_a_checkpoint_says_so(interrupted):
    first = interrupted["first"]
    assert f"no checkpoint found in {interrupted['work']}; starting from iteration 0" in first.stderr
    assert "Auto resumed" not in first.stdout + first.stderr


def test_time_based_checkpoints_resume_exactly(interrupted):
    work, straight = interrupted["work"], interrupted["straight"]
    # Saved by time after iterations 1-3 (the iteration interval is 100); max_keep_ckpts=3 then drops iter_1.
    assert "time-based" in interrupted["first"].stderr  # a summary line of the quiet console
    assert sorted(p.name for p in work.glob("iter_*.pth")) == ["iter_2.pth", "iter_3.pth", "iter_4.pth"]
    # Untimed at the default (30 minutes): only the last iteration.
    assert sorted(p.name for p in straight.glob("iter_*.pth")) == ["iter_4.pth"]
    resumed_run = sorted(work.glob("*/vis_data/scalars.json"))[-1]
    assert [json.loads(line).get("iter") for line in resumed_run.read_text().splitlines()] == [4]
    assert _losses(work)[4] == _losses(straight)[4]  # continued from iteration 3's checkpoint, bit for bit


def test_time_based_checkpoint_follows_the_clock(monkeypatch, tmp_path):
    """TimedCheckpointHook saves when `minutes` have passed since the last save, and not before."""
    from types import SimpleNamespace

    import train_gan.checkpointing as checkpointing

    clock = [0.0]
    monkeypatch.setattr(checkpointing.time, "monotonic", lambda: clock[0])
    hook = checkpointing.TimedCheckpointHook(interval=1000, by_epoch=False, minutes=5)
    saved = []
    monkeypatch.setattr(checkpointing.CheckpointHook, "_save_checkpoint", lambda self, r: saved.append(r.iter))
    monkeypatch.setattr(checkpointing.CheckpointHook, "after_train_iter", lambda *a, **k: None)  # never due by iter
    runner = SimpleNamespace(iter=0, logger=SimpleNamespace(info=lambda *a, **k: None))
    for minute in range(12):
        clock[0] = minute * 60.0
        runner.iter = minute
        hook.after_train_iter(runner, minute)
    assert saved == [5, 10]


# --- bad input -------------------------------------------------------------------------------------------------


def test_missing_or_broken_config_is_one_line(tmp_path, capsys):
    from dpsims_aug.cli import main as cli_main

    assert cli_main(["train", "nonexistent.py"]) == 2
    assert capsys.readouterr().err.startswith("error: config nonexistent.py not found: no such file and no shipped ")
    broken = tmp_path / "broken.py"
    broken.write_text("model = dict(\n")
    assert cli_main(["train", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: config {broken} cannot be loaded: SyntaxError")


def test_a_training_checkpoint_given_to_generate_says_how_to_export(data_root, tmp_path, capsys):
    ckpt = tmp_path / "iter_90.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": {}}, ckpt)
    hint = f"dpsims-aug export {ckpt} --out {tmp_path / 'iter_90.safetensors'}"
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint") as err:
        load_generator_checkpoint(ckpt)
    assert hint in str(err.value)
    from dpsims_aug.cli import main as cli_main

    assert cli_main(["generate", "--labels", str(data_root), "--checkpoint", str(ckpt), "--n", "1",
                     "--out", str(tmp_path / "pool")]) == 2
    assert hint in capsys.readouterr().err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_exported_files_get_the_umask_mode(umask, mode, interrupted, tmp_path):
    from dpsims_aug.checkpoint import save_generator_checkpoint
    from dpsims_aug.labels import get_label_space
    from train_gan.export import export_training_checkpoint

    previous = os.umask(umask)
    try:
        save_generator_checkpoint(tmp_path / "plain.safetensors", GeneratorCheckpoint(
            state_dict={"w": torch.zeros(2)}, generator_config={}, label_space=get_label_space("embedded")))
        export_training_checkpoint(interrupted["work"] / "iter_4.pth", tmp_path / "exported.safetensors")
    finally:
        os.umask(previous)
    for name in ("plain.safetensors", "exported.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_checkpoints_leave_the_pretrained_frozen_backbone_out_and_resume_checks_it(interrupted, data_root, tmp_path):
    """The frozen backbone (ImageNet weights, rebuilt by the model) is not stored; its fingerprint is, and a resume
    whose backbone differs is refused in one line. The bit-for-bit resume above ran from such checkpoints."""
    from dpsims_aug.mm.checkpoints import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    ckpt = torch.load(interrupted["work"] / "iter_4.pth", map_location="cpu", weights_only=True)
    assert not [k for k in ckpt["state_dict"] if k.startswith("discriminator.backbone.")]
    assert any(k.startswith("discriminator.") for k in ckpt["state_dict"])  # the trained parts are kept
    record = json.loads(ckpt["meta"]["dpsims"]["frozen_backbone"])
    assert len(record["sha256"]) == 64 and record["tensors"] > 0

    work = tmp_path / "run"
    shutil.copytree(interrupted["work"], work)
    config = interrupted["work"].parent / "sigint.py"
    other = _run("train", str(config), "--work-dir", str(work), "--data-root", str(data_root), "--resume",
                 "--max-iters", "5",
                 "--cfg-options", "model.discriminator.weights=None",
                 env={"PYTHONPATH": os.pathsep.join([str(config.parent), os.environ.get("PYTHONPATH", "")])})
    assert other.returncode != 0
    assert "another discriminator backbone" in other.stderr and "Traceback" not in other.stderr, other.stderr[-2000:]
