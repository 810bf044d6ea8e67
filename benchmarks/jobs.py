"""The one job runner of the benchmarks: subprocesses, a few at a time, each done when its marker file exists.

A study is a list of :class:`Job`: a command, the log its output is appended to, the file whose existence says the job
has finished (so a rerun skips it: stage caching) and the jobs it waits for. :func:`run_jobs` starts up to
``parallel`` of them, each in a slot (0..parallel-1) whose environment ``env_for_slot`` gives (its thread budget, its
GPU), and returns when all have finished or cannot start. A job whose command fails, or exits without writing its
marker, is reported with the tail of its log; the jobs waiting for it are not started; the others go on, and the run
ends with one error that names every failure. Used by ``bench_seg_gain.py`` (GAN and segmenter runs) and
``bench_gan_ablation.py`` (GAN runs and their evaluations).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import REPO


@dataclass
class Job:
    """One subprocess: ``command`` run in the repository root, output appended to ``log``; finished once ``done``
    exists; started only after every job named in ``after`` has finished."""

    name: str
    command: list[str]
    log: Path
    done: Path
    after: tuple[str, ...] = field(default_factory=tuple)

    def finished(self) -> bool:
        return Path(self.done).is_file()


def thread_env(threads: int, gpu: int | None = None) -> dict[str, str]:
    """Environment of a child process: its OpenMP / MKL thread budget and, on GPUs, its device."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


def one_thread_env(slot: int) -> dict[str, str]:
    """The default child environment: one thread (two 1-thread jobs on 2 cores)."""
    return thread_env(1)


def log(message: str) -> None:
    """Progress line on stderr (a study's table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


def run_jobs(jobs: list[Job], parallel: int = 1, env_for_slot: Callable[[int], dict[str, str]] = one_thread_env,
             tag: str = "jobs", on_finished: Callable[[Job, float], str] | None = None, poll_s: float = 0.5) -> None:
    """Run every unfinished job of ``jobs``, ``parallel`` at a time; raise ``SystemExit`` naming the failures.

    Ready jobs start in list order, except that a job that waited for others starts before one that waited for none
    (in a study those are the short evaluations that report what the long trainings were for).
    ``on_finished(job, seconds)``: the line to log when a job succeeds (default: its name and duration).
    """
    pending = [job for job in jobs if not job.finished()]
    finished = {job.name for job in jobs if job.finished()}
    log(f"[{tag}] {len(finished)} of {len(jobs)} done already; {len(pending)} to run, {parallel} at a time")
    running: dict[int, tuple[subprocess.Popen, Job, float]] = {}  # slot -> (process, job, start)
    failed: list[str] = []
    while pending or running:
        for job in sorted(pending, key=lambda j: not j.after):
            free = [slot for slot in range(parallel) if slot not in running]
            if not free:
                break
            if set(job.after) & set(failed):
                pending.remove(job)
                failed.append(job.name)
                log(f"[{tag}] not started {job.name}: it waits for a failed job")
                continue
            if not set(job.after) <= finished:
                continue
            pending.remove(job)
            running[free[0]] = (_start(job, env_for_slot(free[0])), job, time.perf_counter())
            log(f"[{tag}] start {job.name} (slot {free[0]})")
        if not running and pending:  # every pending job waits for one that can never finish
            failed.extend(job.name for job in pending)
            log(f"[{tag}] blocked: {[job.name for job in pending]}")
            break
        time.sleep(poll_s)
        for slot, (proc, job, start) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[slot]
            if proc.returncode != 0 or not job.finished():
                failed.append(job.name)
                tail = Path(job.log).read_text(errors="replace").splitlines()[-15:]
                log("\n".join([f"[{tag}] FAILED {job.name} (exit {proc.returncode}); log {job.log}:", *tail]))
            else:
                finished.add(job.name)
                seconds = time.perf_counter() - start
                log(on_finished(job, seconds) if on_finished else f"[{tag}] done {job.name} ({seconds:.0f} s)")
    if failed:
        raise SystemExit(f"error: {len(failed)} job(s) failed: {', '.join(failed)}; see their logs")


def _start(job: Job, env: dict[str, str]) -> subprocess.Popen:
    Path(job.log).parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "ab") as out:
        return subprocess.Popen(job.command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
