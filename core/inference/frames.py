"""Which dates a multi-image network sees, and what it sees where a date has no valid pixel.

Kept apart from the pipelines because evaluation must make exactly the same
choices as the plugin (the same frames, the same fill) or it would score
pixels the analyst never gets.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ..jobs import InputError

__all__ = ["select_frames", "fill_invalid"]


def select_frames(valid_fractions: Sequence[float], frames: int) -> Tuple[List[int], str]:
    """Fit the available frames to the model's T: the clearest first, repeated when too few.

    Returns indices into ``valid_fractions`` (clearest first, ties in input order)
    and a sentence saying what was done.
    """
    n = len(valid_fractions)
    order = sorted(range(n), key=lambda i: (-valid_fractions[i], i))
    usable = [i for i in order if valid_fractions[i] > 0]
    if not usable:
        raise InputError("no valid pixels in any input frame")
    if len(usable) >= frames:
        chosen = usable[:frames]
        if n > frames:
            note = f"the model takes {frames} frame(s): chose the {frames} clearest of {n}"
        else:
            note = f"the model takes {frames} frame(s): using all {n}"
    else:
        chosen = [usable[i % len(usable)] for i in range(frames)]
        note = (
            f"the model takes {frames} frame(s) but only {len(usable)} with valid pixels were given: "
            f"repeated them (clearest first) to make {frames}"
        )
        if len(usable) < n:
            note += f"; {n - len(usable)} frame(s) without valid pixels were left out"
    return chosen, note


def fill_invalid(x: np.ndarray, valid: np.ndarray, fallback: float) -> np.ndarray:
    """Invalid pixels of a date take the mean of the valid dates there, else the strip's mean.

    ``x [T, C, h, w]`` (bands of a date share its validity), ``valid [T, h, w]``.
    The network never sees a zero where a cloud was: a hole would read as a dark
    object and be super-resolved into one.
    """
    if valid.all():
        return x
    v = valid[:, None]
    count = valid.sum(0)  # [h, w]
    total = np.where(v, x, 0.0).sum(0)  # [C, h, w]
    mean = np.divide(total, count[None], out=np.zeros_like(total), where=count[None] > 0)
    if (count == 0).any():
        n_valid = count.sum()
        for c in range(x.shape[1]):
            strip_mean = float(total[c].sum() / n_valid) if n_valid else fallback
            mean[c][count == 0] = strip_mean
    return np.where(v, x, mean[None]).astype(np.float32, copy=False)
