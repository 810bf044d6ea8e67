"""Checkpoints by time as well as by iteration, so a stopped run loses minutes of training, not hours."""

from __future__ import annotations

import time

from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from dpsims_aug.mm.runner import SUMMARY


@HOOKS.register_module()
class TimedCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that also saves once ``minutes`` have passed since the last checkpoint.

    Time-based checkpoints are ordinary ``iter_N.pth`` files (same contents, same ``last_checkpoint`` pointer,
    same ``max_keep_ckpts`` rotation), so ``--resume`` continues from them exactly as from the interval ones.
    Only the main process writes checkpoints, so ranks whose clocks disagree about the deadline change nothing.

    Args:
        minutes: Longest time between two checkpoints (``None``: by iteration only). Counted from the start of
            training (or of the resumed run) and from the end of the last save.
        **kwargs: ``CheckpointHook``'s arguments (``interval``, ``by_epoch``, ``max_keep_ckpts``, ...).
    """

    def __init__(self, *args, minutes: float | None = 30.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if minutes is not None and minutes < 0:
            raise ValueError(f"TimedCheckpointHook: minutes must be >= 0, got {minutes}")
        self.minutes = minutes
        self._last_save = time.monotonic()
        self._last_save_step: int | None = None

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._last_save = time.monotonic()

    def _save_checkpoint(self, runner) -> None:
        super()._save_checkpoint(runner)
        self._last_save = time.monotonic()  # any save, by iteration or by time, restarts the clock
        self._last_save_step = runner.iter + 1

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if self.by_epoch or self.minutes is None or self._last_save_step == runner.iter + 1:
            return  # by epoch, off, or this iteration was just saved by interval
        if time.monotonic() - self._last_save >= self.minutes * 60:
            runner.logger.info(f"Saving checkpoint at {runner.iter + 1} iterations (time-based, every "
                               f"{self.minutes:g} minutes)", extra=SUMMARY)
            self._save_checkpoint(runner)
