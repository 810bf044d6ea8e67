"""The shipped configs, found by name: ``dpsims-aug train embedded_small``, ``dpsims-aug seg-train
fastscnn_embedded_pool``, ``dpsims-aug configs``.

Two kinds ship with the project:

* ``gan``: the GAN trainer's configs, ``train_gan/configs/NAME.py`` (package data of ``train_gan``);
* ``segmenter``: the mmseg configs of ``augment/<dataset>/NAME.py``. In a source checkout (or an editable install)
  they are read from the checkout's ``augment/`` folder; a wheel carries a copy in ``dpsims_aug/_shipped/augment``
  (written by ``setup.py`` at build time, as OpenMMLab's ``mim`` packages its configs).

A name is the file name without ``.py``; an existing path is always taken as given. This module only locates files:
it imports neither the trainer nor OpenMMLab.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path

__all__ = ["KINDS", "ConfigNotFoundError", "config_folder", "find_config", "list_configs"]

KINDS = ("gan", "segmenter")
_PACKAGE = Path(__file__).resolve().parent
# A folder is the project's augment/ (not some other package's) when it holds the runtime every config inherits.
_SEGMENTER_MARKER = Path("_base_") / "default_runtime.py"


class ConfigNotFoundError(FileNotFoundError):
    """No file and no shipped config of that name; the message lists the closest names."""


def config_folder(kind: str) -> Path | None:
    """The folder the shipped configs of ``kind`` live in, or None when they are not installed."""
    if kind == "gan":
        # find_spec locates the trainer package without importing it (the toolkit never imports the trainer).
        spec = importlib.util.find_spec("train_gan")
        folders = [Path(p) / "configs" for p in (spec.submodule_search_locations or [])] if spec else []
    elif kind == "segmenter":
        folders = [_PACKAGE.parent / "augment", _PACKAGE / "_shipped" / "augment"]
        folders = [f for f in folders if (f / _SEGMENTER_MARKER).is_file()]
    else:
        raise ValueError(f"unknown config kind {kind!r}; one of {', '.join(KINDS)}")
    return next((f for f in folders if f.is_dir()), None)


def list_configs(kind: str) -> dict[str, Path]:
    """The shipped configs of ``kind`` by name (base files under ``_base_`` excluded), sorted by name."""
    folder = config_folder(kind)
    if folder is None:
        return {}
    found = {p.stem: p for p in folder.rglob("*.py") if "_base_" not in p.relative_to(folder).parts}
    return dict(sorted(found.items()))


def find_config(name_or_path: str | os.PathLike, kind: str) -> Path:
    """The config file a command line names: an existing path as given, else the shipped config of that name.

    Raises:
        ConfigNotFoundError: neither exists; the message names the argument and the closest shipped names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = list_configs(kind)
    name = path.name[:-3] if path.name.endswith(".py") else path.name
    if path.parent == Path(".") and name in shipped:
        return shipped[name]
    close = difflib.get_close_matches(name, list(shipped), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    where = "" if shipped else f" (no shipped {kind} configs are installed)"
    raise ConfigNotFoundError(
        f"config {name_or_path} not found: no such file and no shipped {kind} config of that name{where}{hint} "
        f"(`dpsims-aug configs` lists them)"
    )
