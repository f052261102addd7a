"""Training: recipes (config), the trainer, losses and their weighting, DDP, the experiment grid, starters."""
