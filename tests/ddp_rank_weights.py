"""Run under torchrun by tests/test_trainer.py: train a config with DDP and save each rank's weights."""

import sys
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import get_state_dict

from train_gan.train import build_runner


def main(config: str, work_dir: str) -> None:
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.launcher = "pytorch"
    cfg.env_cfg.dist_cfg.backend = "gloo"
    cfg.train_cfg.max_iters = 2
    cfg.custom_hooks = [dict(type="GANCheckpointHook")]
    cfg.default_hooks.checkpoint.interval = 1000
    runner = build_runner(cfg)
    rank = torch.distributed.get_rank()
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    torch.save({k: v.clone() for k, v in get_state_dict(model).items()}, Path(work_dir) / f"rank{rank}_start.pt")
    runner.train()
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    torch.save({k: v.cpu() for k, v in get_state_dict(model).items()}, Path(work_dir) / f"rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
