"""Brightness anchoring: give each SR tile the mean of its revisits, with no HR image.

Why: cL1 and cPSNR subtract a constant bias before they compare, so a network
trained on them is free to settle on any overall brightness, and some do (a
cL1-only HAT came out a quarter of the reflectance range too dark, which its
cPSNR does not see but segmentation networks and an analyst's eye do). The S-2
degradation keeps the mean, so a faithful SR tile has the mean of its LR tile
over the pixels the revisits saw; adding the difference restores the input's
brightness. Tiles overlap and are blended, so neighbouring offsets join smoothly.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["anchor_offsets", "anchor_note"]


def anchor_offsets(lr: np.ndarray, lr_valid: np.ndarray, sr: np.ndarray, scale: int) -> np.ndarray:
    """Per-tile, per-band brightness offsets (reflectance) that give each SR tile its revisits' mean.

    ``lr [B, T, C, h, w]`` (or ``[B, T, h, w]`` for one band), ``lr_valid [B, T, h, w]``,
    ``sr [B, C, s*h, s*w]``. Returns ``[B, C]`` (``[B]`` for the 4-D form).
    """
    single = lr.ndim == 4
    if single:
        lr = lr[:, :, None]
    b, _t, c, h, w = lr.shape
    valid = lr_valid[:, :, None]  # [B, T, 1, h, w]
    seen = lr_valid.any(1)  # [B, h, w]
    count = lr_valid.sum(1)[:, None]  # [B, 1, h, w]
    per_pixel = np.divide(np.where(valid, lr, 0.0).sum(1), count, out=np.zeros((b, c, h, w), np.float64),
                          where=count > 0)
    sr_blocks = sr.reshape(b, c, h, scale, w, scale).mean(axis=(3, 5))
    n = seen.sum(axis=(1, 2))[:, None]  # [B, 1]
    diff = np.where(seen[:, None], per_pixel - sr_blocks, 0.0).sum(axis=(2, 3))
    out = np.divide(diff, n, out=np.zeros((b, c), np.float64), where=n > 0).astype(np.float32)
    return out[:, 0] if single else out


def anchor_note(offsets: Sequence[float]) -> str:
    """Say how far the network's own brightness was from the revisits' (in reflectance)."""
    mean, spread = float(np.mean(offsets)), float(np.max(np.abs(offsets)))
    text = f"brightness anchored to the revisits: mean offset {mean:+.4f} reflectance (largest {spread:.4f})"
    if spread > 0.02:
        text += ("; the network's raw output is off in brightness (a cL1-trained network is blind to a "
                 "constant offset); anchor=False / --no-anchor writes it as it is")
    return text
