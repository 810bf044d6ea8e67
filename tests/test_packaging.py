"""Every third-party module the installed packages import is declared in the distribution's metadata (read from the
installed dpsims-aug, no network)."""

from __future__ import annotations

import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

from conftest import imported_modules

REPO = Path(__file__).resolve().parents[1]
OWN = {"dpsims_aug", "train_gan"}


def _top_level_imports(root: Path) -> dict[str, str]:
    """Top-level module -> the first file importing it (lazy imports inside functions included)."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        for name in sorted(imported_modules(path)):
            found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def _declared() -> set[str]:
    """Normalized names of every distribution dpsims-aug requires, extras included."""
    names = set()
    for line in requires("dpsims-aug") or []:
        name = re.split(r"[\s;<>=!~\[]", line, maxsplit=1)[0]
        names.add(re.sub(r"[-_.]+", "-", name).lower())
    return names


def test_every_third_party_import_is_declared():
    declared = _declared()
    providers = packages_distributions()
    missing = []
    for root in ("dpsims_aug", "train_gan"):
        for module, where in _top_level_imports(REPO / root).items():
            if module in OWN or module in sys.stdlib_module_names or module == "__future__":
                continue
            dists = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(module, [])}
            if not dists & declared:
                missing.append(f"{module} (imported by {where}; installed from {sorted(dists) or 'nothing'})")
    assert not missing, missing


def test_heavy_optional_dependencies_are_extras():
    base = {re.split(r"[\s;<>=!~\[]", r, maxsplit=1)[0].lower() for r in requires("dpsims-aug") or []
            if "extra ==" not in r}
    assert "scipy" in base  # imported by metrics/fid.py and layouts.py at their top level
    assert "datasets" not in base  # only the Hugging Face paths need it: the `hf` extra
