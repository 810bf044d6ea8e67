"""Network configs as plain dicts: what checkpoints store (safetensors metadata is JSON) and configs pass around."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T", bound="DictConfig")


class DictConfig:
    """Mixin for config dataclasses: :meth:`to_dict` (JSON-compatible, tuples as lists) and its inverse
    :meth:`from_dict`, which refuses unknown keys (a typo, or a config written by another version)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists) that :meth:`from_dict` turns back into an equal config."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: naming the unknown keys and the known ones.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")
        return cls(**dict(data))
