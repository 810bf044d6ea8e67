"""DP-SIMS GAN trainer."""
