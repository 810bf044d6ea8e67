"""The benchmarks' job runner (``benchmarks/jobs.py``): stage caching, dependencies, slots and failures, on real
subprocesses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from jobs import Job, run_jobs  # noqa: E402


def _job(tmp_path: Path, name: str, after: tuple[str, ...] = (), fail: bool = False, write: bool = True) -> Job:
    """A job that appends its name to ``order.txt``, then writes its marker (or exits 3 / exits without it)."""
    done = tmp_path / f"{name}.done"
    code = (f"import os, pathlib, sys; p = pathlib.Path({str(tmp_path / 'order.txt')!r}); "
            f"p.open('a').write({name!r} + ' ' + os.environ['SLOT_THREADS'] + '\\n'); "
            + ("sys.exit(3)" if fail else (f"pathlib.Path({str(done)!r}).write_text('ok')" if write else "")))
    return Job(name=name, command=[sys.executable, "-c", code], log=tmp_path / "logs" / f"{name}.log", done=done,
               after=after)


def _env(slot: int) -> dict[str, str]:
    import os

    return dict(os.environ, SLOT_THREADS=f"slot{slot}")


def test_jobs_run_after_their_dependencies_and_cached_jobs_are_skipped(tmp_path):
    (tmp_path / "cached.done").write_text("earlier run")
    jobs = [_job(tmp_path, "train"), _job(tmp_path, "cached"), _job(tmp_path, "eval", after=("train", "cached"))]
    run_jobs(jobs, parallel=2, env_for_slot=_env, poll_s=0.05)
    order = [line.split()[0] for line in (tmp_path / "order.txt").read_text().splitlines()]
    assert order == ["train", "eval"]  # the cached job did not run again; eval waited for train
    assert all(job.finished() for job in jobs)


def test_slots_give_each_running_job_its_own_environment(tmp_path):
    jobs = [_job(tmp_path, f"j{i}") for i in range(3)]
    run_jobs(jobs, parallel=2, env_for_slot=_env, poll_s=0.05)
    slots = {line.split()[1] for line in (tmp_path / "order.txt").read_text().splitlines()}
    assert slots <= {"slot0", "slot1"} and "slot0" in slots


def test_a_failure_stops_its_dependents_only_and_is_named(tmp_path, capsys):
    jobs = [_job(tmp_path, "bad", fail=True), _job(tmp_path, "no_marker", write=False),
            _job(tmp_path, "good"), _job(tmp_path, "after_bad", after=("bad",))]
    with pytest.raises(SystemExit) as info:
        run_jobs(jobs, parallel=1, env_for_slot=_env, poll_s=0.05)
    message = str(info.value)
    assert "bad" in message and "no_marker" in message and "after_bad" in message and "good" not in message
    assert jobs[2].finished() and not jobs[3].finished()
    ran = [line.split()[0] for line in (tmp_path / "order.txt").read_text().splitlines()]
    assert "after_bad" not in ran
    assert "FAILED bad (exit 3)" in capsys.readouterr().err
