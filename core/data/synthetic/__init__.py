"""Procedural scenes with exact masks: the study's towns (v1) and stand-in areas for fine-tuning."""
