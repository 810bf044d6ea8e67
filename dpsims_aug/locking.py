"""One writer per output folder: an advisory lock that a second run meets as a clear refusal.

Two ``generate`` runs on one folder would each clean up "leftover" temporary files that are in fact the other run's
writes in flight. :func:`output_lock` holds an ``fcntl`` lock on ``<folder>/.dpsims-aug.lock`` for the whole run; a
second run is refused at once with the command, process id and host of the holder. The kernel drops the lock when
the holder exits, however it exits (``kill -9`` included), so a stale lock file never blocks anyone; the last holder
removes the file.

Shards of one sharded run (``--shard i/N``) share the folder: each takes the folder lock shared and its own shard's
lock exclusive, so two processes of the same shard, or an unsharded run beside a sharded one, are refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".dpsims-aug.lock"


class OutputLockedError(RuntimeError):
    """Another process is writing to the same output folder."""


def _holder(path: Path, wait_s: float = 1.0) -> str:
    """Who holds the lock, as its holder wrote it. An exclusive holder writes that line just after it takes the lock,
    so a run that lost the race by microseconds waits for it briefly; shared (shard) holders write none."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        if text or time.monotonic() >= deadline:
            return text or "another process"
        time.sleep(0.02)


@contextlib.contextmanager
def _flock(path: Path, exclusive: bool, folder: Path, what: str) -> Iterator[None]:
    while True:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (the lock lives as long as the handle)
        try:
            fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise OutputLockedError(
                f"{folder} is in use by {_holder(path)}; wait for it to finish (its work is kept and this run would "
                f"only resume it), or choose another output folder. Nothing was written by this {what}."
            ) from None
        try:  # the last holder removes the file on release: retry if we locked a file that is gone
            if os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        if exclusive:
            handle.seek(0)
            handle.truncate()
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(f"`{what}` (pid {os.getpid()} on {socket.gethostname()}, since {started})\n")
            handle.flush()
        yield
    finally:
        try:  # leave no lock file behind once nobody holds it (a shared holder checks that it is the last)
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)
        except BlockingIOError:
            pass
        handle.close()


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, what: str, shard: tuple[int, int] = (0, 1)) -> Iterator[None]:
    """Hold the writer lock of ``folder`` (created if missing) for the duration of the ``with`` block.

    Args:
        folder: The output folder.
        what: The command, for the message another run gets (e.g. ``"dpsims-aug generate"``).
        shard: ``(i, N)``: shards of one run share the folder, each shard is exclusive.

    Raises:
        OutputLockedError: naming the folder and the process that holds it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    i, n = shard
    if n == 1:
        with _flock(folder / LOCK_NAME, True, folder, what):
            yield
        return
    with _flock(folder / LOCK_NAME, False, folder, what), \
            _flock(folder / f"{LOCK_NAME}.shard-{i}-of-{n}", True, folder, f"{what} --shard {i}/{n}"):
        yield
