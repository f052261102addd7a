"""Networks (RAMS, HAT, UNet++), their registry, typed model cards, checkerboard-free upsampling and safe checkpoints."""
