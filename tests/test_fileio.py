"""Crash-safe writes (dpsims_aug.fileio): whole or nothing, fsync'ed, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from dpsims_aug import fileio
from dpsims_aug.fileio import atomic_path, atomic_write_text


def test_permissions_follow_the_process_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic_write_text(tmp_path / "b.txt", "data")
    assert events == ["fsync", "replace"] and (tmp_path / "b.txt").read_text() == "data"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "c.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "d.bin"
    target.write_bytes(b"old")

    def no_space(a, b):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fileio.os, "replace", no_space)
    with pytest.raises(OSError, match="No space"):
        fileio.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["d.bin"]


def test_a_link_replaces_the_target_and_shares_the_source_data(tmp_path):
    source, target = tmp_path / "src.png", tmp_path / "out" / "ann.png"
    source.write_bytes(b"labels")
    target.parent.mkdir()
    target.write_bytes(b"stale")
    fileio.atomic_link(target, source)
    assert target.read_bytes() == b"labels" and target.stat().st_ino == source.stat().st_ino
    assert sorted(p.name for p in target.parent.iterdir()) == ["ann.png"]


def test_a_link_across_filesystems_becomes_a_copy(tmp_path, monkeypatch):
    source, target = tmp_path / "src.png", tmp_path / "ann.png"
    source.write_bytes(b"labels")

    def cross_device(src, dst):
        raise OSError(18, "Invalid cross-device link")
    monkeypatch.setattr(fileio.os, "link", cross_device)
    fileio.atomic_link(target, source)
    assert target.read_bytes() == b"labels" and target.stat().st_ino != source.stat().st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.png", "src.png"]
