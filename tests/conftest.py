"""Shared test helpers: the tiny generator checkpoint and the import walker.

Test files import the plain functions (``from conftest import tiny_generator_checkpoint``) where they need a
variant; the ``ckpt`` fixture is the common case: one tiny random generator of the embedded label space, saved once
per session.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Literal

import pytest
import torch

from dpsims_aug.checkpoint import GeneratorCheckpoint, save_generator_checkpoint
from dpsims_aug.labels import LabelSpace, embedded_label_space
from dpsims_aug.models import DPSIMSGenerator, generator_config

# ------------------------------------------------------------------------------------ generator checkpoints


def tiny_generator(seed: int = 0, num_classes: int | None = None, preset: str = "tiny",
                   **config) -> DPSIMSGenerator:
    """A randomly initialised generator: ``torch.manual_seed(seed)``, then ``generator_config(preset, ...)`` with
    the embedded label space's class count unless ``num_classes`` is given; ``config``: further config overrides
    (e.g. ``use_instance_edges=True``)."""
    torch.manual_seed(seed)
    classes = embedded_label_space().num_classes if num_classes is None else num_classes
    return DPSIMSGenerator(generator_config(preset, num_classes=classes, **config))


def save_generator(path: str | Path, generator: DPSIMSGenerator, label_space: LabelSpace | None = None) -> Path:
    """Export ``generator`` (its weights and config) with ``label_space`` (default: the embedded one) to ``path``."""
    space = embedded_label_space() if label_space is None else label_space
    save_generator_checkpoint(path, GeneratorCheckpoint(generator.state_dict(), generator.config.to_dict(), space))
    return Path(path)


def tiny_generator_checkpoint(path: str | Path, *, seed: int = 0, label_space: LabelSpace | None = None,
                              preset: str = "tiny", **config) -> Path:
    """Save a :func:`tiny_generator` for ``label_space`` (default: embedded; its class count sizes the model) to
    ``path`` and return the path."""
    space = embedded_label_space() if label_space is None else label_space
    return save_generator(path, tiny_generator(seed, space.num_classes, preset, **config), space)


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory) -> Path:
    """The tiny embedded-space generator (seed 0), saved once per session. Read it; never modify it."""
    return tiny_generator_checkpoint(tmp_path_factory.mktemp("tiny_ckpt") / "tiny.safetensors")


# ------------------------------------------------------------------------------------------- import walker


def imported_modules(path: Path, scope: Literal["anywhere", "import time", "top level"] = "anywhere",
                     modules: set[str] | None = None) -> set[str]:
    """Absolute module names that the Python file ``path`` imports (relative imports are left out).

    ``scope``: ``"anywhere"``: every import statement, lazy ones in function bodies included; ``"import time"``:
    the statements that run when the module is imported, i.e. top-level ones and those nested in top-level
    ``if``/``try`` blocks (``if TYPE_CHECKING:`` blocks count); ``"top level"``: unconditional top-level
    statements only.

    ``from pkg import name`` counts as ``pkg.name`` where that is one of ``modules`` (a submodule), else as ``pkg``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if scope == "anywhere":
        nodes = list(ast.walk(tree))
    else:
        nodes, todo = [], list(tree.body)
        while todo:
            node = todo.pop()
            nodes.append(node)
            if scope == "import time" and isinstance(node, (ast.If, ast.Try)):
                todo.extend(ast.iter_child_nodes(node))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update(f"{node.module}.{a.name}" if modules and f"{node.module}.{a.name}" in modules
                         else node.module for a in node.names)
    return found
