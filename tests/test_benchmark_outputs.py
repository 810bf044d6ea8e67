"""Issues 29/30: a benchmark run never overwrites the committed results by accident. Every script in benchmarks/ that
writes results takes ``--update-results`` (write the committed ``benchmarks/results/<name>``) and its explicit output
flag; without either it writes ``work_dirs/benchmarks/<name>``. One atomic, repository-relative JSON writer and one
machine record (``benchmarks/common.py``) serve them all."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the scripts import benchmarks/common.py as ``common``, as when run directly

import common  # noqa: E402

HELPERS = {"common.py", "jobs.py", "speed/oasis_reference.py"}  # imported by the scripts, write nothing
# The scripts: speed/ (what things cost), studies/ (what synthetic data does), and the results index at the top.
SCRIPTS = sorted(p.relative_to(BENCHMARKS).as_posix() for folder in ("", "speed/", "studies/")
                 for p in BENCHMARKS.glob(f"{folder}*.py")
                 if p.relative_to(BENCHMARKS).as_posix() not in HELPERS)  # every other script writes


def load_script(name: str):
    """The script ``benchmarks/<name>`` as a module (not run: every script's work is in its ``main``)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{Path(name).stem}", BENCHMARKS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scripts_are_found() -> None:
    assert {"speed/bench_scenes.py", "studies/bench_seg_gain.py", "studies/bench_gan_ablation.py",
            "studies/seg_gain_runs.py", "results_index.py"} <= set(SCRIPTS)
    assert not list(BENCHMARKS.glob("bench_*.py")), "measuring scripts live in speed/ or studies/"


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_takes_update_results_and_an_explicit_output_flag(script: str, capsys) -> None:
    """``main(["--help"])`` of every script lists ``--update-results`` and ``--out`` or ``--results``; no script
    builds a results path of its own."""
    module = load_script(script)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--update-results" in text and any(flag in text for flag in common.OUTPUT_FLAGS)
    source = (BENCHMARKS / script).read_text()
    assert '"results" /' not in source and '/ "results"' not in source, "results paths come from common.py"


def namespace(**kwargs) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    common.add_output_args(parser, "x.json", kwargs.pop("flag", "--out"))
    return parser.parse_args(kwargs.pop("argv", []))


def test_output_path_default_flag_and_explicit_path(tmp_path: Path) -> None:
    assert common.output_path(namespace(), "x.json") == common.WORK / "x.json"
    assert common.output_path(namespace(argv=["--update-results"]), "x.json") == common.RESULTS / "x.json"
    explicit = tmp_path / "mine.json"
    for argv in (["--out", str(explicit)], ["--out", str(explicit), "--update-results"]):
        assert common.output_path(namespace(argv=argv), "x.json") == explicit
    stem = tmp_path / "stem"
    assert common.output_path(namespace(flag="--results", argv=["--results", str(stem)]), "x") == stem
    assert common.output_path(namespace(flag="--results"), "x") == common.WORK / "x"
    figure = REPO / "docs" / "figure.png"
    assert common.output_path(namespace(argv=["--update-results"]), "x.json", committed=figure) == figure
    assert common.WORK == REPO / "work_dirs" / "benchmarks" or "DPSIMS_BENCH_WORK" in os.environ
    assert common.RESULTS == REPO / "benchmarks" / "results"


def test_write_results_is_atomic_and_repository_relative(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "r.json"  # parents created
    record = {"config": str(REPO / "augment" / "x.py"), "command": f"python {REPO}/benchmarks/b.py", "n": [1]}
    common.write_results(path, record)
    text = path.read_text()
    assert text.endswith("}\n")
    written = json.loads(text)
    assert {k: written[k] for k in ("config", "command", "n")} == {"config": "augment/x.py",
                                                                   "command": "python benchmarks/b.py", "n": [1]}
    assert list(written)[:3] == ["config", "command", "n"]  # the script's own keys first, as given
    with pytest.raises(TypeError):
        common.write_results(path, {"unserializable": object()})
    assert path.read_text() == text  # the old file, whole
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left


def test_every_result_records_its_command_commit_and_machine(tmp_path: Path) -> None:
    """The shared schema: what a script does not set itself, write_results adds (the git commit always, so a
    result says which code produced it)."""
    path = tmp_path / "r.json"
    common.write_results(path, {"settings": {"n": 1}, "summary": {"x": 2.0}})
    written = json.loads(path.read_text())
    assert list(written)[:2] == ["settings", "summary"]
    assert written["command"].startswith("python ") and {"cpus", "torch"} <= set(written["machine"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout (CI clones one)
        assert written["git"]["commit"] == head.stdout.strip()
        assert isinstance(written["git"]["uncommitted_changes"], bool)
    own = {"command": "python mine.py", "git": {"commit": "abc"}, "machine": {"cpus": 1}}
    common.write_results(path, own)
    assert json.loads(path.read_text()) == own  # a script's own record wins


def test_machine_info_is_one_record_with_the_script_extras() -> None:
    machine = common.machine_info(jobs=2, loadavg_start=[0.5, 0.4, 0.3])
    assert {"platform", "cpu", "cpus", "python", "torch", "threads", "loadavg"} <= set(machine)
    assert machine["jobs"] == 2 and machine["loadavg_start"] == [0.5, 0.4, 0.3] and len(machine["loadavg"]) == 3
    json.dumps(machine)


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_real_run_writes_the_work_dir_not_the_committed_results(tmp_path: Path) -> None:
    before = digests(common.RESULTS)
    work = tmp_path / "work"
    env = dict(os.environ, DPSIMS_BENCH_WORK=str(work), OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "benchmarks/speed/bench_scenes.py", "--n", "8", "--size", "32", "32",
                    "--runs", "1"],
                   cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
    record = json.loads((work / "scenes_speed.json").read_text())
    assert record["n_images"] == 8 and record["machine"]["cpus"] == os.cpu_count()
    assert digests(common.RESULTS) == before
