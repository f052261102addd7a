"""The 3-pixel grid score: how strongly an image carries the checkerboard of a x3 pixel shuffle.

A sub-pixel (pixel-shuffle) upsampler computes the nine pixels of each 3x3
output block with nine different kernels. When those kernels disagree, even a
perfectly flat field comes out stamped with a pattern that repeats every 3
pixels. In the spectrum such a pattern is a set of sharp peaks at the
frequencies ``(ky, kx)`` with ``ky, kx`` in ``{0, N/3, 2N/3}`` (DC excluded):
eight bins. Natural images and bicubic upsampling have a smooth spectrum there
(bicubic even has zeros at exactly those frequencies), so the ratio of a bin's
power to that of its neighbourhood tells a stamped grid from real texture
whatever the image's contrast. The score (DESIGN.md section 4) is

    median over the 8 bins of  P(bin) / mean P(neighbourhood of the bin)

Reading of the definition used here, and why:

* The image is cropped (bottom/right) to a multiple of 3 on each axis so the
  grid frequencies fall exactly on bins; nothing leaks between bins for a
  pattern of period exactly 3.
* The image minus its mean is multiplied by a 2-D Hann window before the FFT,
  so the discontinuity between opposite borders (the FFT wraps around) does not
  spread power over the whole spectrum.
* Neighbourhood = the bins within +-3 of the grid bin on both axes, without
  the bin itself *and without its +-1 neighbours*: the Hann window spreads a
  pure tone over exactly that 3x3 main lobe, so counting those bins as
  "background" would cap the score of a strong grid at about 40.
* The eight bins are ``(0, N/3)``, ``(0, 2N/3)``, ``(N/3, 0)``, ``(2N/3, 0)``,
  ``(N/3, N/3)``, ``(N/3, 2N/3)``, ``(2N/3, N/3)``, ``(2N/3, 2N/3)`` (row,
  column). A real image's spectrum is symmetric, so they form four pairs of
  equal values; the median is the mean of the middle two pairs. Stripes (one
  axis) and checkerboards (both) are both covered.
* Multi-band images ``[C, H, W]``: the power spectra of the bands are averaged
  before the ratio (one score per image; a grid in any band shows).
* Invalid pixels (``valid == False`` or non-finite) are filled with the mean of
  the valid ones before windowing: a constant fill adds no periodic content.

A single image's periodogram fluctuates (each bin is roughly exponentially
distributed around its expectation), so textured images and noise score about
0.5-1.5; a flat field with an upsampler grid of 1 % contrast scores in the
hundreds. :func:`local_grid_energy` gives the same score per sliding window
(for a trust map).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

__all__ = ["grid_score", "local_grid_energy", "grid_bins", "GRID_PERIOD", "NEIGHBOURHOOD"]

GRID_PERIOD = 3
#: Half-width (bins) of the neighbourhood a grid bin is compared with.
NEIGHBOURHOOD = 3
#: Half-width of the Hann window's main lobe, left out of the neighbourhood.
_MAIN_LOBE = 1
_EPS = 1e-30


def grid_bins(h: int, w: int, period: int = GRID_PERIOD) -> List[Tuple[int, int]]:
    """The eight (row, column) FFT bins of a period-``period`` pattern on an ``h x w`` spectrum."""
    ys = [round(i * h / period) for i in range(period)]
    xs = [round(i * w / period) for i in range(period)]
    return [(y, x) for y in ys for x in xs if (y, x) != (0, 0)]


def _as_bands(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        return a
    raise ValueError(f"grid_score expects [H, W] or [C, H, W], got shape {a.shape}")


def _valid_mask(bands: np.ndarray, valid: Optional[np.ndarray]) -> np.ndarray:
    """[H, W] True where every band is finite and ``valid`` (if given) says so."""
    ok = np.isfinite(bands).all(axis=0)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.ndim == 3:
            v = v.all(axis=0)
        if v.shape != ok.shape:
            raise ValueError(f"valid has shape {v.shape}, the image {ok.shape}")
        ok &= v
    return ok


def _windowed_power(bands: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Mean over bands of |FFT(hann * (band - mean))|^2; ``bands`` [..., C, H, W], ``ok`` [..., H, W]."""
    h, w = bands.shape[-2:]
    okb = np.broadcast_to(ok[..., None, :, :], bands.shape)
    n = np.maximum(ok.sum(axis=(-2, -1)), 1)[..., None, None, None]
    mean = np.where(okb, bands, 0.0).sum(axis=(-2, -1), keepdims=True) / n
    x = np.where(okb, bands, mean) - mean
    win = np.outer(np.hanning(h), np.hanning(w)) if min(h, w) > 1 else np.ones((h, w))
    spec = np.fft.fft2(x * win, axes=(-2, -1))
    return (spec.real ** 2 + spec.imag ** 2).mean(axis=-3)


def _ratios(power: np.ndarray) -> np.ndarray:
    """Per grid bin, P(bin) / mean P(ring of the bin); ``power`` [..., H, W] -> [..., 8]."""
    h, w = power.shape[-2:]
    r, lobe = NEIGHBOURHOOD, _MAIN_LOBE
    dy, dx = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
    ring = (np.abs(dy) > lobe) | (np.abs(dx) > lobe)
    dy, dx = dy[ring], dx[ring]
    out = []
    for y, x in grid_bins(h, w):
        peak = power[..., y, x]
        around = power[..., (y + dy) % h, (x + dx) % w].mean(axis=-1)
        out.append(peak / np.maximum(around, _EPS))
    return np.stack(out, axis=-1)


def _crop(bands: np.ndarray, valid: Optional[np.ndarray]) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    h, w = bands.shape[-2:]
    h3, w3 = h - h % GRID_PERIOD, w - w % GRID_PERIOD
    if valid is not None:
        valid = np.asarray(valid)[..., :h3, :w3]
    return bands[..., :h3, :w3], valid


def grid_score(image: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """3-px grid score of ``image`` [H, W] or [C, H, W] (see the module docstring).

    ``valid`` [H, W] (or [C, H, W]) marks the pixels to use; non-finite pixels
    are invalid too. Returns NaN when the image is smaller than 12 x 12 after
    cropping to multiples of 3 or has no valid pixel (nothing to measure).
    """
    bands, valid = _crop(_as_bands(image), valid)
    h, w = bands.shape[-2:]
    if min(h, w) < 4 * GRID_PERIOD:
        return float("nan")
    ok = _valid_mask(bands, valid)
    if not ok.any():
        return float("nan")
    return float(np.median(_ratios(_windowed_power(bands, ok))))


def local_grid_energy(image: np.ndarray, window: int = 48, step: Optional[int] = None,
                      valid: Optional[np.ndarray] = None, min_valid: float = 0.5) -> np.ndarray:
    """Grid score of every ``window x window`` patch on a grid of ``step`` pixels (for a trust map).

    Entry ``[i, j]`` scores the patch whose top-left pixel is ``(i * step, j * step)``;
    ``step`` defaults to ``window // 2``. ``window`` is rounded down to a multiple of 3
    (at least 12). Patches with less than ``min_valid`` valid pixels get NaN. An
    image smaller than one window gives a ``[1, 1]`` array scored on the whole image.
    Each row of patches goes through one batched FFT.
    """
    bands = _as_bands(image)
    win = max(4 * GRID_PERIOD, int(window) - int(window) % GRID_PERIOD)
    step = int(step) if step else max(1, win // 2)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    h, w = bands.shape[-2:]
    if h < win or w < win:
        return np.array([[grid_score(bands, valid)]], dtype=np.float64)
    ok = _valid_mask(bands, valid)
    ny, nx = (h - win) // step + 1, (w - win) // step + 1
    xs = np.arange(nx) * step
    ix = xs[:, None] + np.arange(win)[None, :]  # nx, win
    scores = np.empty((ny, nx), dtype=np.float64)
    for i in range(ny):  # one row of patches per batched FFT keeps memory flat for large images
        rows = slice(i * step, i * step + win)
        patches = np.moveaxis(bands[:, rows][:, :, ix], 2, 0)  # nx, C, win, win
        pok = np.moveaxis(ok[rows][:, ix], 1, 0)  # nx, win, win
        row = np.median(_ratios(_windowed_power(patches, pok)), axis=-1)
        row[pok.mean(axis=(-2, -1)) < float(min_valid)] = np.nan
        scores[i] = row
    return scores
