"""The floors of the code base: the toolkit stands alone (one-way imports) and finds the trainer's subcommands by
entry point."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from conftest import imported_modules

REPO = Path(__file__).resolve().parents[1]
UPPER = ("train_gan", "augment", "benchmarks", "tests")


def test_the_toolkit_never_imports_the_trainer_configs_or_benchmarks():
    offenders = []
    for path in sorted((REPO / "dpsims_aug").rglob("*.py")):
        for name in imported_modules(path):
            if name.split(".")[0] in UPPER:
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, offenders


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circle_in_the_toolkit():
    paths = sorted((REPO / "dpsims_aug").rglob("*.py"))
    known = {_module_name(p) for p in paths}
    # Imports that run when a module is imported (type-checking blocks count; function bodies do not).
    graph = {_module_name(p): imported_modules(p, "import time", known) & known for p in paths}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(dep):], module, dep]))
            if dep not in state:
                visit(dep, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_only_the_openmmlab_wing_imports_openmmlab_at_module_level():
    """``import dpsims_aug`` and ``dpsims-aug generate`` must not need mmengine / mmcv / mmseg."""
    offenders = []
    for path in sorted((REPO / "dpsims_aug").rglob("*.py")):
        if "mm" in path.relative_to(REPO / "dpsims_aug").parts[:1]:
            continue
        offenders += [f"{path.relative_to(REPO)} imports {n}" for n in sorted(imported_modules(path, "top level"))
                      if n.split(".")[0] in ("mmengine", "mmcv", "mmseg")]
    assert not offenders, offenders


def test_trainer_subcommands_are_registered_by_entry_point():
    from dpsims_aug.cli import COMMAND_GROUP, build_parser

    found = {e.name: e.value for e in entry_points(group=COMMAND_GROUP)}
    assert found == {"train": "train_gan.cli:add_train_command", "export": "train_gan.cli:add_export_command"}
    choices = build_parser()._subparsers._group_actions[0].choices
    assert {"dataset", "generate", "layouts", "filter", "evaluate", "train", "export"} <= set(choices)
