"""DP-SIMS GAN trainer: discriminator, losses, the mmengine model, data, hooks and configs.

Importing the package registers its components in mmengine's registries (configs name them by type).
"""

from train_gan import data, hooks, model, optim  # noqa: F401 - registration side effects
