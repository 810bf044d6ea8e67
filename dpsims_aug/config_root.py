"""Point an mmengine config (a segmenter's or the GAN trainer's) at another dataset root.

mmengine executes a config file once: ``data_root = '...'`` is copied into every dataset dict when the file is read,
so overriding the top-level ``data_root`` afterwards (``--cfg-options data_root=X``, or a config inheriting ours)
changes nothing the datasets see, and a segmenter config carries the root in several nested places (train/val/test
datasets, the real half of a ``SyntheticMixDataset``, each member of a ``ConcatDataset``). :func:`set_data_root`
rewrites them all::

    from mmengine.config import Config
    from dpsims_aug.config_root import set_data_root

    cfg = Config.fromfile("augment/embedded/fastscnn_embedded_pool.py")
    set_data_root(cfg, "work_dirs/data/mine")  # and the offline pool: work_dirs/data/mine_dpsims

``dpsims-aug train --data-root DIR`` (and ``--cfg-options data_root=DIR``) use the same function, and
``dpsims-aug train --label-space FILE`` uses :func:`set_label_space` the same way for the classes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmengine.config import Config

POOL_SUFFIX = "_dpsims"  # `dpsims-aug generate --labels ROOT` writes its pool to ROOT_dpsims by default


def _same_path(a: Any, b: Any) -> bool:
    return all(isinstance(x, (str, os.PathLike)) for x in (a, b)) and os.path.normpath(a) == os.path.normpath(b)


def _is_mapping(node: Any) -> bool:
    # mmengine's Config is no Mapping, but has items() and item assignment like its ConfigDicts.
    return callable(getattr(node, "items", None)) and hasattr(node, "__setitem__")


def _is_pool(node: Any, key: Any) -> bool:
    """Whether ``node[key]`` is the synthetic half of a ``SyntheticMixDataset``."""
    return key == "synthetic" and node.get("type") == "SyntheticMixDataset"


def _rewrite(node: Any, roots: tuple[str, str, Any], where: str, changed: list[str], seen: set[int],
             in_pool: bool = False) -> None:
    """Set every non-empty ``data_root`` below ``node`` to the new root, or to the new pool root for the offline
    pool. ``roots``: (new root, new pool root, old pool root)."""
    if id(node) in seen:  # a dict several keys share: rewritten (and listed) once, on its first path
        return
    seen.add(id(node))
    root, pool_root, old_pool = roots
    if _is_mapping(node):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "data_root" and isinstance(value, (str, os.PathLike)) and str(value):
                node[key] = pool_root if in_pool or _same_path(value, old_pool) else root
                changed.append(path)
            else:
                _rewrite(value, roots, path, changed, seen, in_pool or _is_pool(node, key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _rewrite(value, roots, f"{where}.{i}", changed, seen, in_pool)


def set_data_root(cfg: Config | dict, root: str | os.PathLike, pool_root: str | os.PathLike | None = None
                  ) -> list[str]:
    """Point every dataset of ``cfg`` at the dataset in ``root`` (in place).

    Every ``data_root`` entry anywhere in the config (the top-level key, dataloaders, nested ``real`` /
    ``datasets``, hooks' held-out datasets, TSTR settings) becomes ``root``, except the offline synthetic pool's:
    the ``synthetic`` half of a ``SyntheticMixDataset`` and entries equal to the config's ``pool_root`` become
    ``pool_root`` (default ``<root>_dpsims``, where ``dpsims-aug generate --labels ROOT`` writes the pool), so the
    pool keeps matching its real data. Every entry moves, not only those equal to the top-level ``data_root``:
    after the file was executed a copied root cannot be told from a deliberate one, and a config that inherits
    ours and sets only ``data_root`` leaves its datasets on the parent's root. An empty ``data_root`` (paths given
    in full) is left alone. A config that reads two different datasets needs its nested keys set one by one.

    Args:
        cfg: An mmengine ``Config`` (or a plain dict of the same shape): a segmenter's or the GAN trainer's.
        root: The new dataset root.
        pool_root: The new offline pool (default ``<root>_dpsims``), for configs that have one.

    Returns:
        The dotted paths of the entries changed (e.g. ``train_dataloader.dataset.data_root``; a dict that several
        keys share is listed under the first).

    Raises:
        ValueError: if the config has no ``data_root`` entry at all.
    """
    root = os.path.normpath(root)
    pool_root = os.path.normpath(pool_root) if pool_root is not None else f"{root}{POOL_SUFFIX}"
    old_pool = cfg.get("pool_root")
    changed: list[str] = []
    _rewrite(cfg, (root, pool_root, old_pool), "", changed, set())
    if not changed:
        raise ValueError("the config has no data_root entry; set its datasets' roots directly")
    if isinstance(old_pool, (str, os.PathLike)):
        cfg["pool_root"] = pool_root
        changed.append("pool_root")
    return changed


def _set_key(node: Any, key: str, value: Any, where: str, changed: list[str], seen: set[int]) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    if _is_mapping(node):
        for name, child in node.items():
            path = f"{where}.{name}" if where else str(name)
            if name == key and isinstance(child, (str, os.PathLike)):
                node[name] = value
                changed.append(path)
            else:
                _set_key(child, key, value, path, changed, seen)
    elif isinstance(node, (list, tuple)):
        for i, child in enumerate(node):
            _set_key(child, key, value, f"{where}.{i}", changed, seen)


def set_label_space(cfg: Config | dict, label_space: str | os.PathLike) -> list[str]:
    """Give every ``label_space`` entry of a GAN trainer config (the model, the training dataset, the held-out
    hooks' datasets, the top-level key) the same value, in place: a preset name or a label-space JSON file.

    Like ``data_root``, the file's top-level ``label_space`` was copied into each of them when it was executed, so
    overriding one key alone leaves the others on the old classes.

    Returns:
        The dotted paths of the entries changed.

    Raises:
        ValueError: if the config has no ``label_space`` entry at all.
    """
    changed: list[str] = []
    _set_key(cfg, "label_space", str(label_space), "", changed, set())
    if not changed:
        raise ValueError("the config has no label_space entry")
    return changed
