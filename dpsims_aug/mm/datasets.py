"""``SyntheticMixDataset``: real + synthetic samples with the synthetic share of every epoch (and so, in
expectation, of every batch) set by one number. Registered in mmengine's ``DATASETS``.
"""

from __future__ import annotations

import math

from mmengine.registry import DATASETS

from dpsims_aug.data.splits import check_trainable


def _check_synthetic_split(synthetic) -> None:
    """Refuse synthetic data made from validation or test label maps (its folder's split record says so)."""
    cfg = synthetic if isinstance(synthetic, dict) else vars(synthetic)
    root = cfg.get("data_root")
    if root:
        check_trainable(root, "SyntheticMixDataset(synthetic=...)")


@DATASETS.register_module()
class SyntheticMixDataset:
    """Real and synthetic samples, a fixed share ``synthetic_share`` of them synthetic.

    One pass over the dataset holds every real sample ``real_times`` times and every synthetic sample about equally
    often, in the proportion ``synthetic_share`` (exact up to rounding), whatever the two sizes are; a shuffling
    sampler then gives every batch that share in expectation. ``real_times`` defaults to the smallest count for
    which every synthetic sample appears at least once per pass. ``synthetic_share=0`` is the real set alone,
    ``1`` the synthetic set alone (pretraining on synthetic data).

    Args:
        real: Dataset config (or dataset) of the real training samples.
        synthetic: Dataset config (or dataset) of the synthetic samples (e.g. ``dpsims_train_dataset`` of a pool's
            ``dataset_config.py``, or a filtered pool). Its classes must be the real set's; a pool made from
            validation or test label maps (its ``source_split.json``) is refused.
        synthetic_share: Fraction of synthetic samples, in [0, 1].
        real_times: Passes over the real samples per pass over this dataset (default: see above).

    Example (mmseg config)::

        train_dataloader = dict(dataset=dict(
            type='SyntheticMixDataset', real=real_train_dataset, synthetic=dpsims_train_dataset,
            synthetic_share=0.25))
    """

    def __init__(self, real, synthetic, synthetic_share: float, real_times: int | None = None) -> None:
        if not 0.0 <= float(synthetic_share) <= 1.0:
            raise ValueError(f"SyntheticMixDataset: synthetic_share must be in [0, 1], got {synthetic_share!r}")
        _check_synthetic_split(synthetic)
        self.real = DATASETS.build(real) if isinstance(real, dict) else real
        self.synthetic = DATASETS.build(synthetic) if isinstance(synthetic, dict) else synthetic
        self.synthetic_share = float(synthetic_share)
        real_classes = tuple(self.real.metainfo.get("classes", ()))
        synthetic_classes = tuple(self.synthetic.metainfo.get("classes", ()))
        if real_classes != synthetic_classes:
            raise ValueError(
                "SyntheticMixDataset: the synthetic set's classes differ from the real set's "
                f"(real {real_classes[:5]}..., {len(real_classes)} classes; synthetic {synthetic_classes[:5]}..., "
                f"{len(synthetic_classes)} classes)")
        n_real, n_syn, share = len(self.real), len(self.synthetic), self.synthetic_share
        if (n_real == 0 and share < 1) or (n_syn == 0 and share > 0):
            raise ValueError(f"SyntheticMixDataset: {n_real} real and {n_syn} synthetic samples cannot give a "
                             f"synthetic share of {share}")
        if share in (0.0, 1.0):
            self.real_times = 0 if share == 1 else (real_times or 1)
            self.num_synthetic_slots = n_syn if share == 1 else 0
        else:
            if real_times is None:  # smallest whole number of real passes whose share covers every synthetic sample
                real_times = max(1, math.ceil(n_syn * (1 - share) / (share * n_real) - 1e-9))
            self.real_times = int(real_times)
            self.num_synthetic_slots = max(1, round(self.real_times * n_real * share / (1 - share)))
        self.num_real_slots = self.real_times * n_real

    @property
    def metainfo(self) -> dict:
        """The real set's metainfo (classes, palette, ...)."""
        return self.real.metainfo

    def full_init(self) -> None:
        """Fully initialise both sets (mmengine's lazy-init protocol)."""
        for dataset in (self.real, self.synthetic):
            if hasattr(dataset, "full_init"):
                dataset.full_init()

    def __len__(self) -> int:
        return self.num_real_slots + self.num_synthetic_slots

    def source(self, index: int) -> tuple[str, int]:
        """``('real' | 'synthetic', index into that set)`` of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"SyntheticMixDataset index {index} out of range for length {len(self)}")
        if index < self.num_real_slots:
            return "real", index % len(self.real)
        # Synthetic slots spread evenly over the synthetic samples (each used floor or ceil of slots / size times).
        return "synthetic", (index - self.num_real_slots) * len(self.synthetic) // self.num_synthetic_slots

    def __getitem__(self, index: int):
        which, i = self.source(index)
        return (self.real if which == "real" else self.synthetic)[i]
