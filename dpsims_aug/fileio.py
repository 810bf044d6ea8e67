"""Crash-safe file writes: every file the toolkit produces appears whole or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


def _temp_path(path: Path) -> Path:
    """A fresh hidden temporary name next to ``path`` (same folder, so the final rename is atomic); the suffix is
    kept so libraries that pick a format from the extension (PIL, torch) still work."""
    return path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp{path.suffix}"


def _create_temp(path: Path) -> tuple[int, Path]:
    """(open write descriptor, path) of a new temporary file next to ``path``.

    Created like any output file (0666 minus the process umask, applied by the kernel): outputs are shared datasets,
    unlike mkstemp's private 0600.
    """
    while True:
        tmp_path = _temp_path(path)
        try:
            return os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666), tmp_path
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    The final ``os.replace`` is atomic on POSIX: a reader (or a resumed run after ``kill -9``) sees either the old
    file, no file, or the complete new one, never half of it. The data is fsync'ed before the rename, so after a
    power loss the new name never points at unwritten blocks.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_path = _create_temp(path)
    os.close(fd)
    mode = tmp_path.stat().st_mode & 0o777
    try:
        yield tmp_path
        # Writers that replace the file instead of writing into it (safetensors' save_file renames its own
        # mkstemp file onto the path) leave 0600: give the result the mode the process's umask gave tmp_path.
        os.chmod(tmp_path, mode)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (the guarantees of :func:`atomic_path`).

    The short form of ``atomic_path`` for bytes in hand: one create, write, fsync and rename (``generate`` writes
    one per image, so the system calls count).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_path = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_link(path: str | os.PathLike, source: str | os.PathLike) -> None:
    """Place ``path`` as a hard link to the existing file ``source``, atomically (replacing ``path``); a copy (via
    :func:`atomic_path`) where a link is impossible, e.g. across filesystems.

    A link shares the source's data blocks, so there is nothing to fsync: one link and one rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp_path = _temp_path(path)
        try:
            os.link(source, tmp_path)
            break
        except FileExistsError:
            continue
        except OSError:  # another filesystem, or links not supported: copy
            with atomic_path(path) as tmp:
                shutil.copyfile(source, tmp)
            return
    try:
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
