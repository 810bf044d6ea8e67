"""Per-class recolouring: each class region of an image gets its own brightness and tint.

A GAN trained on a handful of images learns one appearance per class; recolouring the class regions of its training
images independently shows it combinations of appearances the images never had (a grey road under a green sky next to
a darker field), so its noise can learn to vary each class on its own. A study lever for small datasets
(``SegPairDataset(class_recolour=...)``), off by default; :class:`dpsims_aug.mm.transforms.ClassRecolour` applies the
same to a segmenter's real images, the synthesis-free baseline.
"""

from __future__ import annotations

import numpy as np


def check_recolour_options(strength: float, prob: float) -> None:
    """ValueError unless ``strength >= 0`` and ``prob`` is in [0, 1] (every user of the recolouring checks here)."""
    if strength < 0 or not 0.0 <= prob <= 1.0:
        raise ValueError(f"class_recolour strength must be >= 0 and its probability in [0, 1], got {strength} and "
                         f"{prob}")


def recolour_classes(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, strength: float,
                     prob: float = 0.5, ignore_index: int = 255) -> np.ndarray:
    """``image`` (``H x W x 3`` uint8) with each class of ``labels`` recoloured independently.

    Every class present (the ignore index excepted), in ascending id order, is recoloured with probability ``prob``:
    its pixels are multiplied by a brightness drawn from ``[1 - strength, 1 + strength]`` times a per-channel tint
    drawn from ``[1 - strength / 2, 1 + strength / 2]``, then clipped to 0..255. All draws come from ``rng``, so the
    result is a pure function of the inputs and the generator's state. Returns a new array; ``strength == 0``
    returns ``image`` unchanged (and draws nothing); a negative strength or a probability outside [0, 1] raises.
    """
    check_recolour_options(strength, prob)
    if strength == 0:
        return image
    out = image.astype(np.float32)
    for cls in np.unique(labels):
        if cls == ignore_index:
            continue
        draws = rng.uniform(size=5)  # always five, so one class's choice does not shift the next one's draws
        if draws[0] >= prob:
            continue
        gain = (1.0 + strength * (2.0 * draws[1] - 1.0)) * (1.0 + 0.5 * strength * (2.0 * draws[2:] - 1.0))
        mask = labels == cls
        out[mask] *= gain.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
