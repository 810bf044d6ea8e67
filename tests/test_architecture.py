"""The floors of the code base: the toolkit stands alone (one-way imports) and finds the trainer's subcommands by
entry point."""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UPPER = ("train_gan", "augment", "benchmarks", "tests")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):  # also lazy imports inside functions
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_toolkit_never_imports_the_trainer_configs_or_benchmarks():
    offenders = []
    for path in sorted((REPO / "dpsims_aug").rglob("*.py")):
        for name in _imported_modules(path):
            if name.split(".")[0] in UPPER:
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, offenders


def test_trainer_subcommands_are_registered_by_entry_point():
    from dpsims_aug.cli import COMMAND_GROUP, build_parser

    found = {e.name: e.value for e in entry_points(group=COMMAND_GROUP)}
    assert found == {"train": "train_gan.cli:add_train_command", "export": "train_gan.cli:add_export_command"}
    choices = build_parser()._subparsers._group_actions[0].choices
    assert {"dataset", "generate", "layouts", "filter", "evaluate", "train", "export"} <= set(choices)
