"""Evaluation: metrics, whole-scene scoring through the inference runner, reports and comparisons."""
