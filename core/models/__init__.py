"""Networks (RAMS, HAT, UNet++) and the model zoo with safe checkpoints."""
