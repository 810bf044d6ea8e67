"""What every benchmark script shares: the repository root, where results go and how they are written, the machine
record, repository-relative results, and the reading of ``bench_seg_gain.py``'s finished segmenter runs.

Where results go: a script writes ``work_dirs/benchmarks/<name>`` (``WORK``, not tracked) unless it is given
``--update-results``, which writes the committed ``benchmarks/results/<name>`` (``RESULTS``), or an explicit path
(``--out`` / ``--results``), which always wins. So an ordinary run never overwrites a committed result. The
environment variable ``DPSIMS_BENCH_WORK`` moves ``WORK`` elsewhere (read when this module is imported; the tests use
it to keep a real run out of the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from dpsims_aug.fileio import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WORK = Path(os.environ.get("DPSIMS_BENCH_WORK") or REPO / "work_dirs" / "benchmarks")
OUTPUT_FLAGS = ("--out", "--results")  # the explicit output flags of the scripts (``--results``: a path stem)


def add_output_args(parser: argparse.ArgumentParser, name: str, flag: str = "--out", what: str = "results JSON",
                    committed: Path | None = None) -> None:
    """Add ``--update-results`` and the explicit output flag (``--out`` or ``--results``, default None) to a
    script's parser. ``name``: the output's name under ``WORK`` / ``RESULTS`` (as shown in ``--help``); ``what``:
    the explicit flag's help; ``committed``: where ``--update-results`` writes when that is not ``RESULTS / name``
    (pass the same to :func:`output_path`)."""
    if flag not in OUTPUT_FLAGS:
        raise ValueError(f"explicit output flag {flag!r}: expected one of {OUTPUT_FLAGS}")
    committed = committed or RESULTS / name
    parser.add_argument("--update-results", action="store_true",
                        help=f"write to {_shown(committed)} (the committed results) instead of "
                        f"{_shown(WORK / name)}")
    parser.add_argument(flag, type=Path, default=None,
                        help=f"{what} (wins over --update-results; default: {_shown(WORK / name)})")


def output_path(args: argparse.Namespace, name: str, committed: Path | None = None) -> Path:
    """Where a script writes: the explicit ``--out`` / ``--results`` path if given, else ``RESULTS / name`` (or
    ``committed``) with ``--update-results``, else ``WORK / name``."""
    for flag in OUTPUT_FLAGS:
        explicit = getattr(args, flag[2:], None)
        if explicit is not None:
            return Path(explicit)
    if getattr(args, "update_results", False):
        return committed or RESULTS / name
    return WORK / name


def write_json(path: Path, record: Any, indent: int = 1) -> None:
    """Write ``record`` as JSON (trailing newline) atomically, parent folders created: a reader sees the old file or
    the whole new one; if serialization fails, the old file is left as it was."""
    text = json.dumps(record, indent=indent) + "\n"  # serialize first: a failure writes nothing
    atomic_write_text(path, text)


def write_results(path: Path, record: dict, indent: int = 1) -> None:
    """Write a results record: :func:`write_json` of it, completed to the schema every result shares
    (:func:`with_provenance`), with every repository path made relative (:func:`repo_relative`)."""
    write_json(path, repo_relative(with_provenance(record)), indent=indent)


def with_provenance(record: dict) -> dict:
    """``record`` with what every result holds, where the script did not set it: ``command`` (this process's
    command line), ``git`` (the commit it ran at and whether the tree had uncommitted changes) and ``machine``
    (:func:`machine_info`). A script's own keys (its settings, runs and summary) come first and are kept as they
    are."""
    extra: dict[str, Any] = {}
    if "command" not in record:
        extra["command"] = shlex.join(["python", _shown(Path(sys.argv[0]).resolve()), *sys.argv[1:]])
    if "git" not in record:
        extra["git"] = git_state()
    if "machine" not in record:
        extra["machine"] = machine_info()
    return {**record, **extra}


def git_state() -> dict[str, Any]:
    """``{"commit": full hash or None, "uncommitted_changes": bool or None}`` of the repository (None outside a git
    checkout): which code produced a result, and whether that code was exactly a commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "uncommitted_changes": None}
    return {"commit": commit, "uncommitted_changes": bool(status.strip())}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(**extra: Any) -> dict[str, Any]:
    """The machine record a measuring script's results file holds under ``machine``: platform, CPU model, logical
    CPUs, Python and torch versions, torch's thread count and the load averages (1, 5, 15 min) at this call;
    ``extra`` (a script's own keys, e.g. ``loadavg_start``, ``jobs``, ``device``) is merged in and wins."""
    import torch

    base = dict(platform=platform.platform(), cpu=cpu_model(), cpus=os.cpu_count(), python=platform.python_version(),
                torch=torch.__version__, threads=torch.get_num_threads(), loadavg=loadavg())
    return {**base, **extra}


def loadavg() -> list[float]:
    """The load averages (1, 5, 15 min), rounded: a shared machine's other jobs inflate timings."""
    return [round(x, 2) for x in os.getloadavg()]


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (for help texts)."""
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def repo_relative(value: Any) -> Any:
    """``value`` (JSON-like) with every path inside the repository written relative to it, so results files hold
    no machine-specific absolute paths (strings such as recorded commands included)."""
    if isinstance(value, dict):
        return {k: repo_relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repo_relative(v) for v in value]
    if isinstance(value, str):
        return value.replace(str(REPO) + os.sep, "")
    return value


def results_paths(stem: Path) -> tuple[Path, Path]:
    """``(<stem>.png, <stem>.json)``; not ``with_suffix``, which would cut a stem that holds dots (``..._s0.25``).
    The folder is created, so a figure can be saved there before the JSON."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    return stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".json")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def runs_by_seed(folder: Path, seeds: int) -> dict[int, float]:
    """``{seed: mIoU}`` of the finished ``bench_seg_gain.py`` runs of seeds ``0..seeds-1`` in one variant folder."""
    out = {}
    for result in folder.glob("seed*/result.json"):
        seed = int(result.parent.name[4:])
        if seed < seeds:
            out[seed] = float(json.loads(result.read_text())["mIoU"])
    return out


def add_study_args(parser: argparse.ArgumentParser, seg_iters: bool = True) -> None:
    """The options that name one ``bench_seg_gain.py`` study for the reports that read its runs: ``--work-dir``,
    ``--labelled``, ``--domain`` (see :func:`study_folder`) and, where segmenter runs are read, ``--seg-iters``."""
    parser.add_argument("--work-dir", type=Path, default=REPO / "work_dirs" / "seg_gain")
    parser.add_argument("--labelled", type=int, default=16)
    parser.add_argument("--domain", default="source", help="the study's renderer domain (default: source)")
    if seg_iters:
        parser.add_argument("--seg-iters", type=int, default=3000)


def study_domain(folder_name: str) -> str:
    """The renderer domain of a study folder ``L<n>_V<val>_S<size>[_<domain>]`` (``source`` without a suffix)."""
    parts = folder_name.split("_")
    return parts[3] if len(parts) > 3 else "source"


def study_folder(work_dir: Path, labelled: int, sub: str = "", domain: str = "source") -> Path:
    """``<work_dir>/L<labelled>_V<val>_S<size>[_<domain>][/<sub>]``: the stage folders of one ``bench_seg_gain.py``
    study (labelled count and renderer domain; ``source`` has no suffix), or a named part of them (e.g.
    ``seg_i3000``); exits with a message naming what is missing."""
    pattern = f"L{labelled}_*"
    matches = sorted(m for m in work_dir.resolve().glob(pattern) if study_domain(m.name) == domain)
    matches = [m / sub if sub else m for m in matches if not sub or (m / sub).exists()]
    if not matches:
        raise SystemExit(f"error: no {pattern}{'' if domain == 'source' else '_' + domain}{'/' + sub if sub else ''} "
                         f"under {work_dir}")
    return matches[0]
