"""Class names and palettes of the real datasets, as JSON (read by dpsims_aug.labels)."""
