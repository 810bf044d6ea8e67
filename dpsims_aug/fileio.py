"""Crash-safe file writes: every file the toolkit produces appears whole or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    The temporary file lives in the same folder so the final ``os.replace`` is atomic on POSIX: a reader (or a
    resumed run after ``kill -9``) sees either the old file, no file, or the complete new one, never half of it.
    The suffix is kept so libraries that pick a format from the extension (PIL, torch) still work. The data is
    fsync'ed before the rename, so after a power loss the new name never points at unwritten blocks.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp_path = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp{path.suffix}"
        try:
            # Created like any output file (0666 minus the process umask, applied by the kernel): outputs are
            # shared datasets, unlike mkstemp's private 0600.
            os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
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
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
