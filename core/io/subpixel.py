"""Sub-pixel shifts between two dates of one area, measured by phase correlation (not resampled away).

Why its own module: the shift between revisits is a measurement the stack
records in its tags (multi-image networks and the trust map use it), and the
method (windowed, masked, refined around the peak) is the same whatever the
stack is made from.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

__all__ = ["measure_shift", "SHIFT_MIN_PIXELS", "SHIFT_MAX", "SHIFT_WINDOW"]

#: Fewest clear pixels two dates must share in that window for a shift to be measured.
SHIFT_MIN_PIXELS = 1024
#: Largest shift searched (10 m pixels); Sentinel-2 dates are co-registered far better than this.
SHIFT_MAX = 8.0
#: Side (10 m pixels) of the window in which shifts are measured: 5 km holds plenty of texture.
SHIFT_WINDOW = 256


def _hann2d(h: int, w: int) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w))


def _box_smooth(mask: np.ndarray, radius: int) -> np.ndarray:
    """Mean of ``mask`` over a (2r+1)^2 box (cumulative sums): soft edges for the clear-pixel taper."""
    if radius <= 0:
        return mask.astype(np.float64)
    a = np.pad(mask.astype(np.float64), radius, mode="edge")
    c = np.cumsum(np.cumsum(a, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    k = 2 * radius + 1
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return s / (k * k)


def _dft_around(spec: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Inverse DFT of ``spec`` evaluated at fractional pixel positions ``rows`` x ``cols`` (matrix products)."""
    fr = np.fft.fftfreq(spec.shape[0])
    fc = np.fft.fftfreq(spec.shape[1])
    kr = np.exp(2j * np.pi * np.outer(rows, fr))
    kc = np.exp(2j * np.pi * np.outer(fc, cols))
    return kr @ spec @ kc


def measure_shift(ref: np.ndarray, img: np.ndarray, ref_valid: Optional[np.ndarray] = None,
                  img_valid: Optional[np.ndarray] = None, max_shift: float = SHIFT_MAX,
                  upsample: int = 100) -> Optional[Tuple[float, float, float]]:
    """Sub-pixel displacement ``(dx, dy, peak)`` of ``img``'s content relative to ``ref``, or None.

    A feature at column c, row r of ``ref`` sits at c + dx, r + dy in ``img``.
    Only pixels clear in both count: each image is normalised on them, set to 0
    elsewhere and multiplied by one taper (a Hann window times a softened
    common mask), so cloud edges and the window border add no structure of
    their own. The whitened cross-power spectrum's inverse DFT peaks at the
    shift; the integer peak is refined on a 1/``upsample`` pixel lattice by
    evaluating that DFT around it (no interpolation). ``peak`` (0..1) is the
    height of the correlation peak: near 1 for a clean match, below ~0.05 the
    shift is noise. None when fewer than :data:`SHIFT_MIN_PIXELS` pixels are
    clear in both, or when either image has no texture.
    """
    ref = np.asarray(ref, dtype=np.float64)
    img = np.asarray(img, dtype=np.float64)
    if ref.shape != img.shape or ref.ndim != 2:
        raise ValueError("measure_shift needs two 2-D arrays of one shape")
    common = np.isfinite(ref) & np.isfinite(img)
    if ref_valid is not None:
        common &= ref_valid
    if img_valid is not None:
        common &= img_valid
    if int(common.sum()) < min(SHIFT_MIN_PIXELS, common.size // 2):
        return None
    taper = _hann2d(*ref.shape) * _box_smooth(common, 3) * common

    def prep(a: np.ndarray) -> Optional[np.ndarray]:
        vals = a[common]
        std = float(vals.std())
        if not std > 1e-9 * max(1.0, float(np.abs(vals).mean())):
            return None
        out = np.where(common, (a - float(vals.mean())) / std, 0.0)
        return out * taper

    a, b = prep(ref), prep(img)
    if a is None or b is None:
        return None
    cross = np.fft.fft2(b) * np.conj(np.fft.fft2(a))
    cross /= np.maximum(np.abs(cross), 1e-12 * np.abs(cross).max())
    surface = np.real(np.fft.ifft2(cross))
    h, w = surface.shape
    rr = np.fft.fftfreq(h) * h
    cc = np.fft.fftfreq(w) * w
    allowed = (np.abs(rr)[:, None] <= max_shift) & (np.abs(cc)[None, :] <= max_shift)
    idx = np.unravel_index(np.argmax(np.where(allowed, surface, -np.inf)), surface.shape)
    r0, c0 = float(rr[idx[0]]), float(cc[idx[1]])
    # Refine: a 1.5-pixel square around the integer peak, sampled every 1/upsample pixel.
    n = int(math.ceil(1.5 * upsample)) + 1
    offs = (np.arange(n) - (n - 1) / 2.0) / upsample
    fine = np.real(_dft_around(cross, r0 + offs, c0 + offs)) / cross.size
    fi = np.unravel_index(np.argmax(fine), fine.shape)
    dy, dx = r0 + offs[fi[0]], c0 + offs[fi[1]]
    return float(dx), float(dy), float(fine[fi])
