"""One optimizer per network: the constructor that turns a multi-optimizer config into an ``OptimWrapperDict``."""

from __future__ import annotations

import copy

from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS
from torch import nn


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PerModuleOptimWrapperConstructor:
    """Build one optimizer wrapper per named submodule of the model.

    Config form (each key names a submodule of the model)::

        optim_wrapper = dict(
            constructor='PerModuleOptimWrapperConstructor',
            generator=dict(optimizer=dict(type='Adam', lr=1e-4, betas=(0.0, 0.999))),
            discriminator=dict(optimizer=dict(type='Adam', lr=4e-4, betas=(0.0, 0.999))),
        )

    A submodule that defines ``trainable_parameters()`` (the discriminator: everything but its frozen backbone)
    contributes those; otherwise every parameter with ``requires_grad``. Each entry may set the wrapper ``type``
    (``AmpOptimWrapper`` for mixed precision) and ``accumulative_counts`` (gradient accumulation).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if paramwise_cfg:
            raise ValueError("PerModuleOptimWrapperConstructor does not support paramwise_cfg")
        self.optim_wrapper_cfg = optim_wrapper_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = model.module if is_model_wrapper(model) else model
        wrappers = {}
        for name, cfg in self.optim_wrapper_cfg.items():
            cfg = copy.deepcopy(dict(cfg))
            if not hasattr(model, name):
                raise ValueError(f"optim_wrapper names {name!r}, but the model has no such submodule")
            module = getattr(model, name)
            module = module.module if is_model_wrapper(module) else module
            if hasattr(module, "trainable_parameters"):
                params = list(module.trainable_parameters())
            else:
                params = [p for p in module.parameters() if p.requires_grad]
            optimizer_cfg = dict(cfg.pop("optimizer"))
            optimizer_cfg["params"] = params
            cfg.setdefault("type", "OptimWrapper")
            wrappers[name] = OPTIM_WRAPPERS.build(cfg, default_args=dict(optimizer=OPTIMIZERS.build(optimizer_cfg)))
        return OptimWrapperDict(**wrappers)
