"""Faults of the writing commands end in one line that says what happened and what is kept, and lose nothing:
two runs on one output folder, a full disk, Ctrl-C."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_generator_checkpoint

from dpsims_aug.cli import main
from dpsims_aug.label_maps import write_label_map
from dpsims_aug.locking import LOCK_NAME, OutputLockedError, output_lock
from dpsims_aug.pool import writer as pool_writer
from dpsims_aug.pool.format import read_manifest_records

REPO = Path(__file__).resolve().parents[1]
# The CLI with every forward slowed down, so that a second process or a signal meets the run mid-way.
SLOW_MAIN = """
import sys, time
from dpsims_aug import synthesis
_orig = synthesis.Synthesizer.synthesize
def _slow(self, *a, **k):
    time.sleep(0.15)
    return _orig(self, *a, **k)
synthesis.Synthesizer.synthesize = _slow
from dpsims_aug.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    ckpt = tiny_generator_checkpoint(base / "g.safetensors")
    labels = base / "labels"
    rng = np.random.default_rng(0)
    for i in range(6):
        raw = np.zeros((32, 32), np.uint8)
        raw[10:] = rng.integers(1, 11)
        write_label_map(labels / f"map_{i:02d}.png", raw)
    reference = base / "reference"
    assert main(_args(labels, ckpt, reference)) == 0
    return labels, ckpt, _tree(reference)


def _args(labels: Path, ckpt: Path, out: Path) -> list[str]:
    return ["generate", "--labels", str(labels), "--n", "3", "--out", str(out), "--checkpoint", str(ckpt),
            "--batch-size", "2", "--no-progress"]


def _tree(out: Path) -> dict[str, bytes]:
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    return {k: v for k, v in files.items() if k.startswith(("images/", "annotations/")) or k == "manifest.jsonl"}


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_a_second_run_on_the_same_folder_is_refused_by_name(setup, tmp_path, capsys):
    labels, ckpt, reference = setup
    out = tmp_path / "pool"
    with output_lock(out, "dpsims-aug generate"):
        assert main(_args(labels, ckpt, out)) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by `dpsims-aug generate` (pid {os.getpid()}" in err and "Traceback" not in err
        assert not (out / "images").exists()
        with pytest.raises(OutputLockedError):  # the API refuses too
            pool_writer.generate(labels, n=3, out=out, checkpoint=ckpt, progress=False)
    assert main(_args(labels, ckpt, out)) == 0
    assert _tree(out) == reference and not (out / LOCK_NAME).exists()


def test_two_processes_started_together_never_corrupt_the_pool(setup, tmp_path):
    labels, ckpt, reference = setup
    out = tmp_path / "pool"
    procs = [subprocess.Popen([sys.executable, "-c", SLOW_MAIN, *_args(labels, ckpt, out)], env=_env(),
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 2]), results  # both finished (one after the other), or one was refused
    for (_, err), proc in zip(results, procs):
        assert b"Traceback" not in err
        if proc.returncode == 2:
            assert b"is in use by `dpsims-aug generate`" in err
    assert _tree(out) == reference


def test_a_run_that_loses_the_race_by_a_moment_still_names_the_holder(tmp_path):
    # the holder takes the lock, then writes who it is: a run refused in between waits for that line
    import fcntl
    import threading

    with open(tmp_path / LOCK_NAME, "a+", encoding="utf-8") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        writes = threading.Timer(0.2, lambda: (holder.write("`dpsims-aug generate` (pid 1)\n"), holder.flush()))
        writes.start()
        try:
            with pytest.raises(OutputLockedError, match=r"in use by `dpsims-aug generate` \(pid 1\)"):
                with output_lock(tmp_path, "dpsims-aug generate"):
                    pass
        finally:
            writes.join()


def test_a_sharded_run_shares_the_folder_but_not_a_shard(setup, tmp_path, capsys):
    labels, ckpt, _ = setup
    out = tmp_path / "pool"
    with output_lock(out, "dpsims-aug generate", shard=(0, 2)):
        assert main([*_args(labels, ckpt, out), "--shard", "0/2"]) == 2  # the same shard
        assert main(_args(labels, ckpt, out)) == 2  # an unsharded run over the whole folder
        assert "in use" in capsys.readouterr().err
        assert main([*_args(labels, ckpt, out), "--shard", "1/2"]) == 0  # the other shard


def test_layouts_filter_and_dataset_lock_their_output_too(setup, tmp_path, capsys):
    labels, _, _ = setup
    for folder, argv in [
        (tmp_path / "maps", ["layouts", "--labels", str(labels), "--k", "1", "--out", str(tmp_path / "maps"),
                             "--no-progress"]),
        (tmp_path / "data", ["dataset", "--out", str(tmp_path / "data"), "--train", "2", "--val", "1", "--size",
                             "16"]),
    ]:
        with output_lock(folder, "someone else"):
            assert main(argv) == 2
            assert "is in use by `someone else`" in capsys.readouterr().err
        assert main(argv) == 0


def test_filter_locks_its_output(setup, tmp_path, capsys):
    from dpsims_aug.data.writers import write_dataset

    labels, ckpt, _ = setup
    data = tmp_path / "data"
    write_dataset(data, "ade20k", n_train=2, n_val=1, size=(32, 32))
    pool = tmp_path / "pool"
    pool_writer.generate(data, n=1, out=pool, checkpoint=ckpt, progress=False, workers=1)
    seg_ckpt = tmp_path / "seg.pth"
    seg_ckpt.write_bytes(b"not loaded before the lock")
    out = tmp_path / "filtered"
    with output_lock(out, "another filter"):
        assert main(["filter", "--pool", str(pool), "--real", str(data), "--seg-config", "fastscnn_embedded_real",
                     "--seg-checkpoint", str(seg_ckpt), "--out", str(out), "--no-progress"]) == 2
    assert "is in use by `another filter`" in capsys.readouterr().err


def test_a_full_disk_ends_in_one_line_and_the_rerun_completes(setup, tmp_path, capsys, monkeypatch):
    labels, ckpt, reference = setup
    out = tmp_path / "pool"
    real_write = pool_writer.atomic_write_bytes
    calls = []

    def fills_up(path, data):
        calls.append(path)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(pool_writer, "atomic_write_bytes", fills_up)
    assert main(_args(labels, ckpt, out)) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("note:")]
    assert len(lines) == 1 and "error: the disk is full writing in" in err and "run the same command" in err
    done = len(read_manifest_records(out))
    assert 0 < done < 18
    monkeypatch.setattr(pool_writer, "atomic_write_bytes", real_write)  # space freed
    assert main(_args(labels, ckpt, out)) == 0
    assert _tree(out) == reference


def test_ctrl_c_ends_in_one_line_and_the_rerun_completes(setup, tmp_path, capsys, monkeypatch):
    labels, ckpt, reference = setup
    out = tmp_path / "pool"
    real = pool_writer.Synthesizer.synthesize
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pool_writer.Synthesizer, "synthesize", interrupted)
    assert main(_args(labels, ckpt, out)) == 130
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C): the images finished so far are kept" in err and "Traceback" not in err
    assert 0 < len(read_manifest_records(out)) < 18
    monkeypatch.setattr(pool_writer.Synthesizer, "synthesize", real)
    assert main(_args(labels, ckpt, out)) == 0
    assert _tree(out) == reference


def test_sigint_to_a_real_generate_process_prints_no_traceback(setup, tmp_path):
    labels, ckpt, reference = setup
    out = tmp_path / "pool"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_MAIN, *_args(labels, ckpt, out)], env=_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # SIGINT is ignored in a background job (`pytest &`) and stays so across exec.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and not (out.exists() and len(read_manifest_records(out)) >= 2):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err and b"interrupted (Ctrl-C)" in err
    assert main(_args(labels, ckpt, out)) == 0
    assert _tree(out) == reference
