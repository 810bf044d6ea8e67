"""Generator network of DP-SIMS and its building blocks."""

from dpsims_aug.models.generator import (
    GENERATOR_PRESETS,
    DPSIMSGenerator,
    GeneratorConfig,
    generator_config,
    sample_noise,
)
from dpsims_aug.models.image_range import images_to_unit_range, unit_range_to_uint8

__all__ = ["GENERATOR_PRESETS", "DPSIMSGenerator", "GeneratorConfig", "generator_config", "images_to_unit_range",
           "sample_noise", "unit_range_to_uint8"]
