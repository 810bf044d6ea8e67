# Shared runtime of every DP-SIMS training config: engine, hooks, logging, optimizers (OASIS defaults).
# train_gan.checkpointing: TimedCheckpointHook (below).
custom_imports = dict(imports=["train_gan", "train_gan.checkpointing"], allow_failed_imports=False)
default_scope = "mmengine"

train_cfg = dict(type="IterBasedTrainLoop", max_iters=100000)

# The paper is silent on optimizers; OASIS: Adam, betas (0, 0.999), lr G 1e-4, D 4e-4.
optim_wrapper = dict(
    constructor="PerModuleOptimWrapperConstructor",
    generator=dict(optimizer=dict(type="Adam", lr=1e-4, betas=(0.0, 0.999))),
    discriminator=dict(optimizer=dict(type="Adam", lr=4e-4, betas=(0.0, 0.999))),
)

# G and D get separate DDP wrappers, so each optimizer step all-reduces only its own network.
model_wrapper_cfg = dict(type="MMSeparateDistributedDataParallel", broadcast_buffers=False)

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),
    param_scheduler=dict(type="ParamSchedulerHook"),
    # Atomic writes: a run killed while saving keeps its previous checkpoint and last_checkpoint pointer.
    # Every `interval` iterations and at least every `minutes` (dpsims-aug train --checkpoint-minutes): a stopped
    # run loses at most that much training, however slow its iterations.
    checkpoint=dict(
        type="TimedCheckpointHook", interval=5000, minutes=30, by_epoch=False, max_keep_ckpts=3,
        backend_args=dict(backend="atomic_local"),
    ),
)
log_processor = dict(by_epoch=False, window_size=20)
visualizer = dict(
    type="Visualizer", vis_backends=[dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl"))
randomness = dict(seed=0)
log_level = "INFO"
