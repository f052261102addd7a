"""Data layer: scenes, readers, degradation, synthetic scenes, patches, vectors."""
