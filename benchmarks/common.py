"""What every benchmark script shares: the repository root and repository-relative results."""

from __future__ import annotations

import os
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
