"""What every benchmark script shares: the repository root, results paths and repository-relative results, and the
reading of ``bench_seg_gain.py``'s finished segmenter runs."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


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
    """``(<stem>.png, <stem>.json)``; not ``with_suffix``, which would cut a stem that holds dots (``..._s0.25``)."""
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


def study_folder(work_dir: Path, labelled: int, sub: str = "") -> Path:
    """``<work_dir>/L<labelled>_*[/<sub>]``: one labelled count's stage folders of ``bench_seg_gain.py`` (or a
    named part of them, e.g. ``seg_i3000``); exits with a message naming what is missing."""
    pattern = f"L{labelled}_*" + (f"/{sub}" if sub else "")
    matches = sorted(work_dir.resolve().glob(pattern))
    if not matches:
        raise SystemExit(f"error: no {pattern} under {work_dir}")
    return matches[0]
