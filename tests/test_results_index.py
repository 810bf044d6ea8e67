"""The committed index of the benchmark results (``benchmarks/results/README.md``, written by
``benchmarks/results_index.py``) lists every file under ``benchmarks/results/`` and nothing that is not there. Only
the file lists are compared: the commit column depends on the clone's history (a shallow clone has other commits)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the script imports benchmarks/common.py as ``common``, as when run directly

spec = importlib.util.spec_from_file_location("results_index", BENCHMARKS / "results_index.py")
results_index = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_index)


def test_the_committed_index_lists_every_result_file() -> None:
    missing, absent = results_index.check()
    hint = "run .venv/bin/python benchmarks/results_index.py and commit benchmarks/results/README.md"
    assert not missing, f"files under benchmarks/results/ missing from its README.md: {missing}; {hint}"
    assert not absent, f"files listed in benchmarks/results/README.md that do not exist: {absent}; {hint}"


def test_check_names_missing_and_absent_files(tmp_path: Path) -> None:
    (tmp_path / "grids").mkdir()
    for name in ("a.json", "a.png", "grids/x.png", "b.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "README.md").write_text("| [a.json](a.json), [a.png](a.png) | [gone.json](gone.json) |\n"
                                        "[docs](../../docs/studies.md#v1) [b.json](b.json)\n")
    assert results_index.check(tmp_path) == (["grids/x.png"], ["gone.json"])


def test_rows_group_a_json_its_png_and_its_grids() -> None:
    files = ["archive/old.json", "g.json", "g.png", "g/v1.png", "s_0.25.json", "s_0.25.png", "lone.png"]
    rows = {e.stem: e.files for e in results_index.entries(sorted(files))}
    assert rows == {"archive/old": ["archive/old.json"], "g": ["g.json", "g.png", "g/v1.png"],
                    "lone": ["lone.png"], "s_0.25": ["s_0.25.json", "s_0.25.png"]}
    assert results_index.Entry("archive/old", ["archive/old.json"]).archived


def test_the_index_written_now_lists_every_file() -> None:
    """What the script writes (rendered in memory, nothing written) links to exactly the files there are."""
    text = results_index.render()
    linked = {t for t in results_index.re.findall(r"\]\(([^)\s#]+)\)", text) if not t.startswith("../")}
    assert {results_index.unquote(t) for t in linked} == set(results_index.result_files())
    assert str(REPO) not in text  # repository-relative


def test_committed_results_hold_no_machine_paths() -> None:
    """Results files record repository-relative paths: an absolute path (a work dir reached through a symlink, a
    temporary folder) names one machine and means nothing in a clone."""
    import re

    machine_path = re.compile(r'"/(work|tmp|home|root|opt|mnt)/|[ =\'](/work|/tmp|/home|/root|/mnt)/')
    offenders = [p.relative_to(REPO).as_posix() for p in sorted((BENCHMARKS / "results").rglob("*.json"))
                 if machine_path.search(p.read_text(errors="replace"))]
    assert not offenders, f"absolute machine paths in {offenders}"
