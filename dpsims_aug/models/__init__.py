"""Generator network of DP-SIMS and its building blocks."""

from dpsims_aug.models.generator import (
    GENERATOR_PRESETS,
    DPSIMSGenerator,
    GeneratorConfig,
    generator_config,
    sample_noise,
)

__all__ = ["GENERATOR_PRESETS", "DPSIMSGenerator", "GeneratorConfig", "generator_config", "sample_noise"]
