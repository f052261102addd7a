"""Procedural scenes with exact masks: the study's towns (v1), rural four-band world v2, stand-in areas for fine-tuning."""
