"""The models' image range: networks take and make images in [-1, 1]; files and pipelines hold uint8 in [0, 255].
The two conversions every caller uses (training batches in, generated images out)."""

from __future__ import annotations

import torch

__all__ = ["images_to_unit_range", "unit_range_to_uint8"]


def images_to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8-valued images (any dtype, 0..255) -> float32 in [-1, 1]."""
    return images.float() / 127.5 - 1.0


def unit_range_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Network images in [-1, 1] (any float dtype) -> uint8, rounded to nearest, values outside clipped."""
    return ((images.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
