"""Local 3-px grid energy of an SR output, streamed by rows: where does it carry an upsampler's checkerboard?

A x3 sub-pixel upsampler can stamp a pattern that repeats every 3 output
pixels. Such a pattern is pure invention (nothing on the ground is aligned to
the output's pixel lattice) and it averages out over every 10 m pixel, so the
comparison with the revisits cannot see it. Two values per window of the SR
output, on a lattice of windows, interpolated (bilinear) to every pixel:

* **grid score**: :func:`core.models.artifacts.local_grid_energy`, the
  DESIGN section 4 score (power at the 3-px frequencies over the power around
  them). About 0.5-1.5 on natural images and bicubic upsampling; a visible grid
  scores tens to thousands. A ratio: it says *whether* a grid dominates its
  neighbourhood in frequency, whatever the image's contrast.
* **grid amplitude** (reflectance): the strength of that grid. The output is
  high-passed (minus its 3x3 box mean, which a zero-mean 3-px pattern passes
  unchanged and smooth content does not), then the *median* of each of the
  nine lattice phases (row mod 3, column mod 3) is taken over the window; the
  root mean square of those nine medians (minus their mean) is the amplitude.
  Medians, so the few real edges in a window do not pass for a grid. A score
  without amplitude is a grid too faint to matter (the shipped networks'
  grids are about 0.001 reflectance, below S-2's noise); both are needed to
  call a grid an invention.

Windows are :data:`WINDOW` px (36 px = 12 LR pixels = 120 m): every
:data:`STEP` px for the amplitude, so a stamped patch of a few hundred metres
shows at its place, side by side (:data:`SCORE_STEP`) for the score, whose
FFTs cost most (about 1 s per row of windows across a full S-2 tile at
3.33 m here; this way a full tile's grid bands take minutes, not an hour). Values are interpolated between window centres (clamped beyond the
first and last centre). Only the lattice rows a range of output rows needs are
computed (and the last few kept), so memory grows with the raster's width.
"""

from __future__ import annotations

import warnings
from typing import Dict, Optional, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..models.artifacts import GRID_PERIOD, grid_score, local_grid_energy

__all__ = ["GridEnergy", "grid_amplitude", "WINDOW", "STEP"]

#: Window side (HR px, a multiple of 3), the amplitude's lattice step and the score's (HR px, multiples of 3).
WINDOW = 36
STEP = 18
SCORE_STEP = 36
#: Windows with less than this share of valid pixels get no value.
MIN_VALID = 0.5


def _highpass(x: np.ndarray) -> np.ndarray:
    """``x`` minus its 3x3 box mean (edge-replicated): a zero-mean 3-px pattern passes unchanged."""
    p = np.pad(x, 1, mode="edge")
    box = sum(p[i : i + x.shape[0], j : j + x.shape[1]] for i in range(3) for j in range(3)) / 9.0
    return x - box


def grid_amplitude(strip: np.ndarray, valid: np.ndarray, window: int = WINDOW, step: int = STEP,
                   context: Tuple[int, int] = (0, 0)) -> np.ndarray:
    """Grid amplitude (reflectance RMS of the 3-px lattice pattern) of every window of ``strip`` [H, W].

    Windows are ``window`` px with top-left corners every ``step`` px (both
    multiples of 3, so every window starts on lattice phase (0, 0)); returns
    ``[ny, nx]``, NaN where less than :data:`MIN_VALID` of a window is valid.
    Invalid pixels are left out of the medians. ``context``: rows above and
    below the strip that only serve the high-pass (so a window's values do not
    depend on where a strip was cut).
    """
    g = GRID_PERIOD
    fill = np.float32(strip[valid].mean()) if valid.any() else np.float32(0.0)
    hp = np.where(valid, _highpass(np.where(valid, strip, fill)), np.nan).astype(np.float32)
    top, bottom = context
    hp = hp[top : hp.shape[0] - bottom]
    h, w = hp.shape
    ny, nx = (h - window) // step + 1, (w - window) // step + 1
    hb, wb = h - h % g, w - w % g
    ph = hp[:hb, :wb].reshape(hb // g, g, wb // g, g)  # [row blocks, row phase, col blocks, col phase]
    kb, sb = window // g, step // g
    out = np.full((ny, nx), np.nan, dtype=np.float32)
    for i in range(ny):
        rows = ph[i * sb : i * sb + kb]  # [kb, 3, Wb, 3]
        win = sliding_window_view(rows, kb, axis=2)[:, :, ::sb][:, :, :nx]  # [kb, 3, nx, 3, kb]
        vals = np.moveaxis(win, 2, 0).reshape(win.shape[2], kb, g, g, kb)  # [nx, kb, 3, 3, kb]
        vals = np.moveaxis(vals, (2, 3), (1, 2)).reshape(win.shape[2], g * g, kb * kb)  # [nx, 9, n]
        finite = np.isfinite(vals)
        share = finite.mean(axis=(1, 2))
        if finite.all():
            med = np.median(vals, axis=2)  # [nx, 9]
        else:
            with warnings.catch_warnings():  # all-NaN windows: NaN, set aside below
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(vals, axis=2)
        med = med - med.mean(axis=1, keepdims=True)
        amp = np.sqrt((med ** 2).mean(axis=1))
        amp[share < MIN_VALID] = np.nan
        out[i] = amp
    return out


def _interp_axis(values: np.ndarray, centres: np.ndarray, at: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` (NaN = none) along ``axis`` from ``centres`` to positions ``at``.

    NaN-aware: each output is the weighted mean of its two neighbours that have
    a value (NaN when neither has); beyond the first/last centre, the nearest.
    """
    v = np.moveaxis(values, axis, -1)
    ok = np.isfinite(v)
    filled = np.where(ok, v, 0.0)
    if centres.size == 1:
        res = np.repeat(v[..., :1], at.size, axis=-1)
        return np.moveaxis(res, -1, axis)
    pos = np.clip(np.interp(at, centres, np.arange(centres.size)), 0, centres.size - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, centres.size - 1)
    t = (pos - lo).astype(np.float32)
    w_lo = (1 - t) * ok[..., lo]
    w_hi = t * ok[..., hi]
    den = w_lo + w_hi
    num = filled[..., lo] * w_lo + filled[..., hi] * w_hi
    res = np.divide(num, den, out=np.full(num.shape, np.nan, dtype=np.float32), where=den > 1e-6)
    return np.moveaxis(res, -1, axis)


class _Lattice:
    """One windowed signal on a lattice of window centres, computed for the rows asked and interpolated."""

    def __init__(self, compute, read, height: int, width: int, window: int, step: int) -> None:
        self.compute, self.read = compute, read
        self.height, self.width, self.window, self.step = height, width, window, step
        self.ny = (height - window) // step + 1
        self.nx = (width - window) // step + 1
        centre = (window - 1) / 2.0
        self.cy = np.arange(self.ny) * step + centre
        self.cx = np.arange(self.nx) * step + centre
        self._cache: Dict[int, np.ndarray] = {}

    def _rows(self, i0: int, i1: int) -> np.ndarray:
        missing = [i for i in range(i0, i1) if i not in self._cache]
        if missing:
            a, b = missing[0], missing[-1] + 1
            r0, r1 = a * self.step, (b - 1) * self.step + self.window
            c0, c1 = max(0, r0 - 1), min(self.height, r1 + 1)  # one row of context (the amplitude's high-pass)
            x, v = self.read(c0, c1)
            values = self.compute(x, v, self.window, self.step, (r0 - c0, c1 - r1))
            for k, i in enumerate(range(a, b)):
                self._cache[i] = values[k].astype(np.float32)
        for i in [i for i in self._cache if i < i0 - 2]:
            del self._cache[i]
        return np.stack([self._cache[i] for i in range(i0, i1)])

    def rows(self, r0: int, r1: int) -> np.ndarray:
        i0 = int(np.clip(np.searchsorted(self.cy, r0, side="right") - 1, 0, self.ny - 1))
        i1 = int(np.clip(np.searchsorted(self.cy, r1 - 1, side="left") + 1, i0 + 1, self.ny))
        across = _interp_axis(self._rows(i0, i1), self.cx, np.arange(self.width, dtype=np.float64), axis=1)
        return _interp_axis(across, self.cy[i0:i1], np.arange(r0, r1, dtype=np.float64), axis=0).astype(np.float32)


def _score(x: np.ndarray, v: np.ndarray, window: int, step: int, context: Tuple[int, int]) -> np.ndarray:
    core = slice(context[0], x.shape[0] - context[1])
    return local_grid_energy(x[core], window, step, valid=v[core], min_valid=MIN_VALID)


class GridEnergy:
    """Grid score and amplitude of an SR band at every pixel, for output rows asked in order.

    ``read(r0, r1) -> (reflectance [r1-r0, W], valid)`` reads rows of the SR
    band inside the raster. The score is computed on non-overlapping windows
    (:data:`SCORE_STEP`; it only has to say whether a grid dominates, and its
    FFTs are the costly part), the amplitude every :data:`STEP` px.
    """

    def __init__(self, read, height: int, width: int, window: int = WINDOW, step: int = STEP,
                 score_step: Optional[int] = None) -> None:
        self.read, self.height, self.width = read, height, width
        self.window = window
        self.small = height < window or width < window
        self._small_values: Optional[Tuple[float, float]] = None
        if not self.small:
            self.score = _Lattice(_score, read, height, width, window, score_step or SCORE_STEP)
            self.amplitude = _Lattice(grid_amplitude, read, height, width, window, step)

    def rows(self, r0: int, r1: int) -> Tuple[np.ndarray, np.ndarray]:
        """(score, amplitude) ``[r1 - r0, width]`` for output rows ``[r0, r1)``."""
        if not self.small:
            return self.score.rows(r0, r1), self.amplitude.rows(r0, r1)
        if self._small_values is None:  # smaller than one window: one value for the whole raster
            x, v = self.read(0, self.height)
            side = min(self.height, self.width) - min(self.height, self.width) % GRID_PERIOD
            amp = grid_amplitude(x, v, side, GRID_PERIOD) if side >= 4 * GRID_PERIOD else np.full((1, 1), np.nan)
            self._small_values = (grid_score(x, v), float(np.nanmedian(amp)) if np.isfinite(amp).any()
                                  else float("nan"))
        s, a = self._small_values
        return np.full((r1 - r0, self.width), s, np.float32), np.full((r1 - r0, self.width), a, np.float32)
