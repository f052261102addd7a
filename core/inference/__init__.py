"""Georeferenced inference: the one tiler, tile planning, brightness anchoring, SR, segmentation, trust maps."""
