"""Real-world-like Sentinel-2 revisits of a world v2 scene: each date rendered, degraded and disturbed.

Why: in the study's real-world version the revisits differ from the HR
image and from each other in ways the simulated version never shows: the
land changes between dates (crops, mowing, leaves, water level, sun), the
frames are misregistered by a fraction of a pixel, the atmosphere leaves a
gain, an offset and some haze, and clouds and their shadows hide parts of
the scene (masked as nodata, the way an L2A scene classification would).
Every revisit is rendered on its own date with :func:`.render.render`,
degraded with the project's operator (:class:`core.data.degrade.Degradation`,
each band with its own PSF) after its shift, then disturbed.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..degrade import Degradation, add_noise, sigma_for_bands
from .geometry import dilate_disk, gaussian_fft
from .render import World, render, sun_position
from .spectra import AMBIENT, BANDS, sample
from .towns import fractal_noise

__all__ = ["revisit_days", "real_world_frames"]


def revisit_days(rng: np.random.Generator, frames: int, hr_doy: float, spread: int) -> np.ndarray:
    """Revisit days on a 5-day grid around the HR date: half of them close, the rest within +- ``spread``."""
    grid = np.arange(-spread, spread + 1, 5)
    near = grid[np.abs(grid) <= 20]
    k_near = min(frames // 2 + 1, near.size)
    a = rng.choice(near, size=k_near, replace=False)
    rest = np.setdiff1d(grid, a)
    b = rng.choice(rest, size=min(frames - k_near, rest.size), replace=False)
    offs = np.concatenate([a, b])
    while offs.size < frames:  # more revisits than 5-day slots: repeat some (another orbit)
        offs = np.append(offs, rng.choice(grid))
    return np.sort(np.clip(hr_doy + offs + rng.integers(-1, 2, offs.size), 1, 365)).astype(np.float64)


def real_world_frames(
    world: World, doys: np.ndarray, rng: np.random.Generator, seed: Sequence[int], misregistration_lr: float = 0.3,
    cloud_probability: float = 0.35,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[Dict[str, Any]]]:
    """Revisits on days ``doys``: (lr [T, 4, h, w], lr_valid [T, h, w], shifts [T, 2] in HR px, per-frame info).

    ``misregistration_lr``: sd of each frame's shift (LR px, clipped at 1);
    ``cloud_probability``: chance of clouds per date (at most half the frames).
    """
    n = world.n
    h = n // 3
    t_count = len(doys)
    hr_stack = np.empty((t_count, 4, n, n), np.float32)
    suns = []
    for t, doy in enumerate(doys):
        az, el = sun_position(doy)
        level = world.water.level_amplitude_m * math.cos(2 * math.pi * (doy - 90) / 365.0) + rng.normal(0, 0.05)
        hr_stack[t], _ = render(world, doy, az, el, level_m=level, canopy_gain=float(np.exp(rng.normal(0, 0.04))))
        suns.append((az, el, level))
    shifts = np.clip(rng.normal(0.0, misregistration_lr, (t_count, 2)), -1.0, 1.0) * 3.0  # HR px
    band_offsets = rng.normal(0.0, 0.05 * 3.0, (4, 2))  # tiny band-to-band misregistration
    sigmas = sigma_for_bands(BANDS)
    gen = torch.Generator().manual_seed(zlib.crc32(repr(tuple(seed)).encode()) & 0x7FFFFFFF)
    lr = np.empty((t_count, 4, h, h), np.float32)
    with torch.no_grad():
        for b in range(4):
            op = Degradation(scale=3, sigma_hr=sigmas[b])
            x = torch.from_numpy(np.ascontiguousarray(hr_stack[:, b:b + 1]))
            s = torch.from_numpy((shifts + band_offsets[b]).astype(np.float32))
            lr[:, b] = add_noise(op(x, s), generator=gen).clamp_min_(0.0).numpy()[:, 0]
    valid = np.ones((t_count, h, h), bool)
    info: List[Dict[str, Any]] = []
    haze_tilt = np.array([1.0, 0.72, 0.48, 0.22], np.float32)  # path radiance falls with wavelength
    cloudy_left = t_count // 2
    for t in range(t_count):
        az, el, level = suns[t]
        gain = float(np.exp(rng.normal(0.0, 0.035)))
        g_band = gain * np.exp(rng.normal(0.0, 0.012, 4)).astype(np.float32)
        offset = rng.normal(0.0, 0.003, 4).astype(np.float32)
        tau = float(min(rng.exponential(0.15), 0.8))  # haze left after the L2A correction: usually faint
        haze = tau * np.clip(0.7 + 0.3 * fractal_noise((h, h), 3.6, rng), 0.0, None)
        img = lr[t] * (g_band * (1 - 0.35 * haze_tilt * tau))[:, None, None] + offset[:, None, None]
        img += 0.05 * haze_tilt[:, None, None] * haze[None]
        kind = "clear"
        cover = 0.0
        if cloudy_left > 0 and rng.random() < cloud_probability:
            cloudy_left -= 1
            kind = "cloud"
            img, v, cover = _clouds(img, rng, az, el)
            valid[t] &= v
        elif rng.random() < 0.05:
            yy, xx = np.mgrid[0:h, 0:h]
            valid[t] &= (xx + yy) > rng.uniform(0.2, 0.5) * h  # swath edge
            kind = "edge"
        lr[t] = np.where(valid[t][None], np.clip(img, 0.0, None), 0.0)
        info.append(dict(doy=int(doys[t]), kind=kind, gain=round(gain, 4), haze=round(tau, 3),
                         cloud_cover=round(cover, 3), sun_elevation=round(el, 2), lake_level_m=round(level, 3)))
    return lr, valid, shifts, info


def _clouds(img: np.ndarray, rng: np.random.Generator, az: float, el: float) -> Tuple[np.ndarray, np.ndarray, float]:
    """Cumulus over the revisit, their shadows on the ground, and an SCL-like mask of both.

    The cloud field is periodic (FFT noise), so the shadow of any cloud, also
    one outside the scene, is the same field rolled by the projection of the
    cloud height along the sun direction.
    """
    h = img.shape[-1]
    field = fractal_noise((h, h), rng.uniform(3.2, 3.8), rng)  # cumulus: smooth at 10 m, ragged at 1 km
    share = rng.uniform(0.04, 0.45)
    thr = np.quantile(field, 1.0 - share)
    tau = np.clip((field - thr) / 0.8, 0.0, None) ** 1.5 * rng.uniform(4.0, 16.0)
    height_m = rng.uniform(600.0, 2000.0)
    reach = height_m / math.tan(math.radians(el)) / 10.0  # LR px
    a = math.radians(az)
    dy, dx = int(round(-math.cos(a) * reach)), int(round(math.sin(a) * reach))  # towards the sun (row, col)
    tau_shadow = np.roll(tau, (-dy, -dx), axis=(0, 1))  # the cloud seen from this pixel towards the sun
    # a veil of thin cloud and haze around the cumulus, thinning over a few hundred metres (never masked)
    veil = gaussian_fft((tau > 0.05).astype(np.float32), rng.uniform(2.0, 6.0)) * rng.uniform(0.1, 0.6)
    tau = tau + veil
    cloud_refl = sample("cloud", 1, rng)[0][:, None, None] * (1 - np.exp(-tau / 2.0))[None]
    transmit = np.exp(-0.35 * tau)[None]
    shade = AMBIENT[:, None, None] + (1 - AMBIENT[:, None, None]) * np.exp(-tau_shadow)[None]
    out = img * shade * transmit + cloud_refl
    # the scene classification masks thick cloud and dark shadow, not the thin edges
    masked = (tau > rng.uniform(0.15, 0.5)) | (tau_shadow > rng.uniform(0.5, 1.2))
    # the classification works on 20 m pixels and smooths its result (no single-pixel holes or specks),
    # and is dilated a little: what stays valid near a cloud is its faint veil, not its bright edge
    masked = ~dilate_disk(~dilate_disk(masked, 1.0), 1.0)
    masked = dilate_disk(masked, float(rng.choice([1.0, 1.5, 2.0])))
    return out.astype(np.float32), ~masked, float((tau > 0.05).mean())
