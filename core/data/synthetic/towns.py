"""Procedural NIR-like scenes with exact building and road masks.

They are the demo data and the test data: a small town on a river among
fields, georeferenced in a real UTM zone (EPSG:32634, southern Poland) with HR
pixels of 10/3 m and LR pixels of 10 m, reflectance in about [0.02, 0.6]. They
are *not* a benchmark of real-world quality; they are built so that the task is
hard in the way the real one is: buildings from 2-3 HR pixels (lost in a 10 m
pixel) to ~16 pixels, some brighter and some darker than their surroundings;
roads from 1-2 px alleys to 4-6 px highways; trees over roads and roofs.

Masks follow OpenStreetMap semantics: a mask pixel is the *footprint* of a
building or road, also where a tree crown hides it in the image (OSM does not
cut roads under trees either), so a segmentation network must learn to
infer occluded parts, as on real data with OSM labels.

Two LR versions:
- *simulated* (default): T revisits from the HR image with the S-2 PSF,
  random sub-pixel shifts (frame 0 unshifted), 3x3 area sampling and noise;
  temporally consistent.
- *real-world-like* (``real_world=True``): every revisit also differs in gain and
  offset, additive low-frequency haze, misregistration (up to ~1 LR px, no frame
  aligned to the HR grid), seasonal vegetation change driven by the acquisition
  date, and occasional clouds or swath-edge nodata (0, ``lr_valid`` False).

Everything is vectorised numpy (FFT noise, Voronoi fields, distance fields for
roads, per-object bounding-box stamping) plus the torch degradation; a 384 px
scene with 9 revisits takes a fraction of a second.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from affine import Affine

from ...io.geo import compose
from ..degrade import S2_NIR_MTF, check_frames, psf_sigma_from_mtf, simulate_frames
from ..scene import Scene, make_split, write_scene

__all__ = ["SyntheticParams", "make_scene", "make_dataset", "fractal_noise", "HR_PIXEL_M", "SYNTH_CRS"]

Progress = Callable[[float, str], None]
HR_PIXEL_M = 10.0 / 3.0
SYNTH_CRS = "EPSG:32634"
# Plausible origin box in UTM 34N (around Krakow); origins snap to the 10 m S-2 grid.
_ORIGIN_X = (400_000.0, 460_000.0)
_ORIGIN_Y = (5_520_000.0, 5_580_000.0)


@dataclass
class SyntheticParams:
    """Knobs of the generator (defaults give a small town; all sizes in HR pixels)."""

    street_spacing: Tuple[float, float] = (30.0, 46.0)
    building_density: float = 0.022  # placement attempts per urban HR pixel x 100
    small_building_share: float = 0.35  # share of 2-3.5 px buildings
    tree_density: float = 0.0012  # crowns per HR pixel
    max_shift_lr: float = 1.0
    hr_noise: float = 0.004
    cloud_probability: float = 0.25  # real-world mode, per revisit


# ---------------------------------------------------------------------- fields
def fractal_noise(shape: Tuple[int, int], beta: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std noise with a 1/f^beta power spectrum (larger beta = smoother)."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    f[0, 0] = 1.0
    spec = np.fft.rfft2(rng.standard_normal(shape)) * f ** (-beta / 2.0)
    spec[0, 0] = 0.0
    out = np.fft.irfft2(spec, s=shape)
    out -= out.mean()
    return (out / (out.std() + 1e-12)).astype(np.float32)


def _segment_distance(
    yy: np.ndarray, xx: np.ndarray, p0: Tuple[float, float], p1: Tuple[float, float]
) -> np.ndarray:
    """Distance of points (yy, xx) to the segment p0-p1 (points given as (y, x))."""
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    ll = dy * dy + dx * dx
    if ll == 0:
        return np.hypot(yy - y0, xx - x0)
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / ll, 0.0, 1.0)
    return np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx))


def _bbox(points: Sequence[Tuple[float, float]], pad: float, shape: Tuple[int, int]) -> Optional[Tuple[slice, slice]]:
    ys = [p[0] for p in points]
    xs = [p[1] for p in points]
    y0 = max(int(math.floor(min(ys) - pad)), 0)
    y1 = min(int(math.ceil(max(ys) + pad)) + 1, shape[0])
    x0 = max(int(math.floor(min(xs) - pad)), 0)
    x1 = min(int(math.ceil(max(xs) + pad)) + 1, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _clip_line(p: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Clip the infinite line p + t d to the box [lo, hi] (Liang-Barsky); None if it misses."""
    t0, t1 = -1e9, 1e9
    for k in range(2):
        if abs(d[k]) < 1e-12:
            if p[k] < lo[k] or p[k] > hi[k]:
                return None
            continue
        a, b = (lo[k] - p[k]) / d[k], (hi[k] - p[k]) / d[k]
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    if t0 >= t1:
        return None
    return p + t0 * d, p + t1 * d


# ---------------------------------------------------------------------- the town
class _Town:
    """Draws one HR scene; keeps the layers that the real-world revisits modify."""

    def __init__(self, size: int, rng: np.random.Generator, params: SyntheticParams) -> None:
        self.n = size
        self.rng = rng
        self.p = params
        self.yy, self.xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        self.img = np.zeros((size, size), np.float32)
        self.veg = np.zeros((size, size), np.float32)  # 1 where the surface is vegetation
        self.field_id = np.full((size, size), -1, np.int32)
        self.roads = np.zeros((size, size), bool)
        self.buildings = np.zeros((size, size), bool)
        self.water = np.zeros((size, size), bool)
        self.occupied = np.zeros((size, size), bool)
        self.building_list: List[Dict[str, float]] = []
        self.road_list: List[Dict[str, float]] = []

    # -- land cover -------------------------------------------------------
    def land_cover(self) -> None:
        n, rng = self.n, self.rng
        grass = 0.32 + 0.05 * fractal_noise((n, n), 3.0, rng) + 0.02 * fractal_noise((n, n), 1.2, rng)
        # fields: Voronoi cells of jittered-grid seeds (one per ~85 px cell, so each pixel only
        # compares the 3x3 neighbouring seeds), each with its own reflectance and row texture
        cs = float(rng.uniform(70.0, 100.0))
        g = int(math.ceil(n / cs))
        seeds = (np.stack(np.mgrid[0:g, 0:g], axis=-1) + rng.uniform(0.1, 0.9, size=(g, g, 2))) * cs
        iy = np.minimum((self.yy // cs).astype(np.int64), g - 1)
        ix = np.minimum((self.xx // cs).astype(np.int64), g - 1)
        best = np.full((n, n), np.inf, np.float32)
        cell = np.zeros((n, n), np.int32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                jy, jx = np.clip(iy + dy, 0, g - 1), np.clip(ix + dx, 0, g - 1)
                d2 = (self.yy - seeds[jy, jx, 0]) ** 2 + (self.xx - seeds[jy, jx, 1]) ** 2
                closer = d2 < best
                best[closer] = d2[closer]
                cell[closer] = (jy * g + jx)[closer]
        k = g * g
        kind = rng.choice(3, size=k, p=[0.45, 0.3, 0.25])  # crop, bare soil, forest/meadow
        level = np.where(kind == 0, rng.uniform(0.36, 0.52, k), np.where(kind == 1, rng.uniform(0.14, 0.24, k), 0.0))
        theta = rng.uniform(0, np.pi, k)
        period = rng.uniform(3.0, 7.0, k)
        amp = np.where(kind == 2, 0.0, rng.uniform(0.015, 0.05, k))
        phase = (self.xx * np.cos(theta)[cell] + self.yy * np.sin(theta)[cell]) / period[cell]
        rows = amp[cell] * np.sin(2 * np.pi * phase)
        field_val = np.where(kind[cell] == 2, grass + 0.04, level[cell] + rows + 0.015 * fractal_noise((n, n), 2.0, rng))
        self.img[:] = field_val
        self.field_id[:] = cell
        self.veg[:] = np.where(kind[cell] == 1, 0.2, 1.0)  # bare soil barely greens up

        # the town: a rotated rectangle with yards, lawns and pavement
        self.angle = float(rng.uniform(-0.5, 0.5))
        c, s = math.cos(self.angle), math.sin(self.angle)
        self.center = rng.uniform(0.4 * n, 0.6 * n, size=2)
        self.half = rng.uniform(0.28 * n, 0.4 * n, size=2)  # half extents (v, u) in town coords
        self.u = (self.xx - self.center[1]) * c + (self.yy - self.center[0]) * s
        self.v = -(self.xx - self.center[1]) * s + (self.yy - self.center[0]) * c
        self.urban = (np.abs(self.u) <= self.half[1]) & (np.abs(self.v) <= self.half[0])
        yards = 0.26 + 0.05 * fractal_noise((n, n), 2.5, rng) + 0.02 * fractal_noise((n, n), 0.8, rng)
        self.img[self.urban] = yards[self.urban]
        self.veg[self.urban] = 0.6
        self.field_id[self.urban] = -1

    def add_water(self) -> None:
        n, rng = self.n, self.rng
        if rng.random() < 0.75:  # a river across the scene, along rows or columns
            along, across = (self.xx, self.yy) if rng.random() < 0.5 else (self.yy, self.xx)
            amp, wl, ph = rng.uniform(5, 25), rng.uniform(0.6 * n, 1.5 * n), rng.uniform(0, 2 * np.pi)
            base = rng.uniform(0.1, 0.9) * n
            slope = rng.uniform(-0.2, 0.2)
            centre = base + slope * along + amp * np.sin(2 * np.pi * along / wl + ph)
            deriv = slope + amp * 2 * np.pi / wl * np.cos(2 * np.pi * along / wl + ph)
            width = rng.uniform(8, 18)
            self.water |= np.abs(across - centre) <= 0.5 * width * np.sqrt(1 + deriv**2)
        if rng.random() < 0.5:  # a pond
            cy, cx = rng.uniform(0.1 * n, 0.9 * n, 2)
            ry, rx = rng.uniform(6, 20, 2)
            self.water |= ((self.yy - cy) / ry) ** 2 + ((self.xx - cx) / rx) ** 2 <= 1.0
        noise = 0.006 * fractal_noise((n, n), 2.0, rng)
        self.img[self.water] = (rng.uniform(0.025, 0.045) + noise)[self.water]
        self.veg[self.water] = 0.0
        self.field_id[self.water] = -1

    # -- roads --------------------------------------------------------------
    def _road(self, p0: np.ndarray, p1: np.ndarray, width: float, value: float, kind: str) -> None:
        box = _bbox([tuple(p0), tuple(p1)], width / 2 + 1, (self.n, self.n))
        if box is None:
            return
        d = _segment_distance(self.yy[box], self.xx[box], tuple(p0), tuple(p1))
        hit = d <= width / 2.0
        if not hit.any():
            return
        self.roads[box] |= hit
        self.img[box][hit] = value + 0.01 * self.rng.standard_normal(int(hit.sum()))
        self.veg[box][hit] = 0.0
        self.road_list.append(dict(y0=float(p0[0]), x0=float(p0[1]), y1=float(p1[0]), x1=float(p1[1]), width=width, kind=kind))

    def add_roads(self) -> None:
        n, rng = self.n, self.rng
        lo, hi = np.array([-2.0, -2.0]), np.array([n + 2.0, n + 2.0])
        # highways crossing the whole scene
        for _ in range(rng.integers(1, 3)):
            a = rng.uniform(0, np.pi)
            d = np.array([math.sin(a), math.cos(a)])
            seg = _clip_line(rng.uniform(0.2 * n, 0.8 * n, 2), d, lo, hi)
            if seg:
                self._road(seg[0], seg[1], rng.uniform(4.0, 6.0), rng.uniform(0.09, 0.12), "highway")
        # the street grid of the town, in town coordinates (u along x', v along y')
        c, s = math.cos(self.angle), math.sin(self.angle)

        def to_img(u: float, v: float) -> np.ndarray:  # town (u, v) -> image (y, x)
            return np.array([self.center[0] + u * s + v * c, self.center[1] + u * c - v * s])

        hu, hv = self.half[1], self.half[0]
        self.block_lines: Dict[str, List[float]] = {"u": [], "v": []}
        for axis, half_along, half_across in (("u", hv, hu), ("v", hu, hv)):
            pos = -half_across + rng.uniform(4, 12)
            i = 0
            while pos < half_across:
                main = i % 3 == 0
                width = rng.uniform(3.0, 4.0) if main else rng.uniform(2.0, 3.0)
                value = rng.uniform(0.10, 0.15)
                # streets may stop short of the town edge
                a0 = -half_along if main or rng.random() < 0.6 else rng.uniform(-half_along, 0)
                a1 = half_along if main or rng.random() < 0.6 else rng.uniform(0, half_along)
                if axis == "u":  # constant u: runs along v
                    p0, p1 = to_img(pos, a0), to_img(pos, a1)
                else:
                    p0, p1 = to_img(a0, pos), to_img(a1, pos)
                self._road(p0, p1, width, value, "main" if main else "street")
                self.block_lines[axis].append(pos)
                pos += rng.uniform(*self.p.street_spacing)
                i += 1
        # alleys: 1-2 px lanes inside some blocks
        for axis in ("u", "v"):
            lines = self.block_lines[axis]
            for a, b in zip(lines[:-1], lines[1:]):
                if rng.random() < 0.45:
                    mid = 0.5 * (a + b) + rng.uniform(-3, 3)
                    other = self.block_lines["v" if axis == "u" else "u"]
                    if len(other) < 2:
                        continue
                    j = rng.integers(0, len(other) - 1)
                    a0, a1 = other[j], other[j + 1]
                    p0, p1 = (to_img(mid, a0), to_img(mid, a1)) if axis == "u" else (to_img(a0, mid), to_img(a1, mid))
                    self._road(p0, p1, rng.uniform(1.0, 2.0), rng.uniform(0.12, 0.2), "alley")
        # rural tracks from the town into the fields
        for _ in range(rng.integers(2, 5)):
            start = to_img(rng.uniform(-hu, hu), rng.uniform(-hv, hv))
            a = rng.uniform(0, 2 * np.pi)
            end = start + rng.uniform(0.3, 0.7) * n * np.array([math.sin(a), math.cos(a)])
            self._road(start, end, rng.uniform(1.5, 2.5), rng.uniform(0.18, 0.24), "track")

    # -- buildings -------------------------------------------------------------
    def add_buildings(self) -> None:
        n, rng = self.n, self.rng
        blocked = self.roads | self.water
        # keep a 1 px gap to roads and other buildings so footprints stay separate objects
        self.occupied = _dilate(blocked, 1)
        urban_idx = np.flatnonzero(self.urban.ravel())
        if urban_idx.size == 0:
            return
        tries = int(self.p.building_density * urban_idx.size)
        # a few farmsteads outside the town too
        rural_idx = np.flatnonzero((~self.urban & ~self.water).ravel())
        for k in range(tries + tries // 12):
            idx = urban_idx if k < tries or rural_idx.size == 0 else rural_idx
            cell = idx[rng.integers(idx.size)]
            cy, cx = cell // n + rng.random(), cell % n + rng.random()
            r = rng.random()
            if r < self.p.small_building_share:
                w = rng.uniform(2.0, 3.5)
                h = w * rng.uniform(1.0, 1.3)
            elif r < self.p.small_building_share + 0.45:
                w = rng.uniform(4.0, 8.0)
                h = w * rng.uniform(1.0, 1.8)
            else:
                w = rng.uniform(8.0, 13.0)
                h = min(w * rng.uniform(1.0, 1.6), 17.0)
            angle = self.angle + (rng.normal(0, 0.05) if rng.random() < 0.85 else rng.uniform(-np.pi, np.pi))
            self._building(cy, cx, w, h, angle)

    def _building(self, cy: float, cx: float, w: float, h: float, angle: float) -> None:
        if self.occupied[min(int(cy), self.n - 1), min(int(cx), self.n - 1)]:
            return  # cheap early rejection: the centre is already taken
        rad = 0.5 * math.hypot(w, h) + 1
        box = _bbox([(cy, cx)], rad, (self.n, self.n))
        if box is None:
            return
        yy, xx = self.yy[box] - cy, self.xx[box] - cx
        c, s = math.cos(angle), math.sin(angle)
        u = xx * c + yy * s
        v = -xx * s + yy * c
        foot = (np.abs(u) <= w / 2) & (np.abs(v) <= h / 2)
        npix = int(foot.sum())
        if npix == 0 or (self.occupied[box] & foot).any():
            return
        rng = self.rng
        # brighter roofs (metal, concrete) or darker ones (tar, tiles), some low-contrast
        r = rng.random()
        value = rng.uniform(0.40, 0.56) if r < 0.45 else rng.uniform(0.06, 0.15) if r < 0.85 else rng.uniform(0.18, 0.24)
        roof = value + 0.012 * rng.standard_normal(npix)
        self.img[box][foot] = roof
        self.veg[box][foot] = 0.0
        self.buildings[box] |= foot
        self.occupied[box] |= _dilate(foot, 1)
        self.building_list.append(dict(cy=cy, cx=cx, w=w, h=h, angle=angle, value=float(value), npix=npix))

    def add_shadows(self) -> None:
        """Buildings cast a short shadow (1-2 px down-right): darken the ground under a shifted footprint."""
        dy, dx = int(self.rng.integers(1, 3)), int(self.rng.integers(1, 3))
        shadow = np.zeros_like(self.buildings)
        shadow[dy:, dx:] = self.buildings[:-dy, :-dx]
        shadow &= ~self.buildings & ~self.water
        self.img[shadow] *= 0.6

    # -- trees -------------------------------------------------------------------
    def add_trees(self) -> None:
        n, rng = self.n, self.rng
        crowns: List[Tuple[float, float, float]] = []
        # street trees along some streets, overhanging the road edge
        for road in self.road_list:
            if road["kind"] not in ("street", "main") or rng.random() > 0.35:
                continue
            p0 = np.array([road["y0"], road["x0"]])
            p1 = np.array([road["y1"], road["x1"]])
            length = float(np.hypot(*(p1 - p0)))
            if length < 1:
                continue
            t_dir = (p1 - p0) / length
            normal = np.array([-t_dir[1], t_dir[0]]) * (1 if rng.random() < 0.5 else -1)
            step = rng.uniform(7, 12)
            for t in np.arange(rng.uniform(0, step), length, step):
                cy, cx = p0 + t * t_dir + normal * (road["width"] / 2 + rng.uniform(0.0, 1.5))
                crowns.append((cy, cx, rng.uniform(1.5, 3.0)))
        # scattered trees in yards and fields, some over roofs
        for _ in range(int(self.p.tree_density * n * n)):
            crowns.append((rng.uniform(0, n), rng.uniform(0, n), rng.uniform(1.5, 4.0)))
        self.trees = np.zeros((n, n), bool)
        for cy, cx, r in crowns:
            box = _bbox([(cy, cx)], r + 1, (n, n))
            if box is None:
                continue
            d2 = (self.yy[box] - cy) ** 2 + (self.xx[box] - cx) ** 2
            disc = d2 <= r * r
            if not disc.any() or self.water[box][disc].all():
                continue
            shade = 0.42 + 0.06 * (1 - np.sqrt(d2[disc]) / r) + 0.02 * rng.standard_normal(int(disc.sum()))
            self.img[box][disc] = shade
            self.veg[box][disc] = 1.0
            self.trees[box] |= disc

    def finish(self) -> np.ndarray:
        hr = self.img + self.p.hr_noise * self.rng.standard_normal(self.img.shape).astype(np.float32)
        return np.clip(hr, 0.02, 0.6).astype(np.float32)


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square dilation by ``r`` pixels (numpy only)."""
    out = mask.copy()
    for _ in range(r):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= grown[:, :-1]
        grown[:, :-1] |= grown[:, 1:]
        out = grown
    return out


# ---------------------------------------------------------------------- revisits
def _dates(rng: np.random.Generator, frames: int, spread_days: int) -> List[_dt.date]:
    start = _dt.date(2021, 3, 1) + _dt.timedelta(days=int(rng.integers(0, 60)))
    slots = np.sort(rng.choice(max(spread_days // 5, frames), size=frames, replace=False))
    return [start + _dt.timedelta(days=int(5 * s)) for s in slots]


def _real_world_frames(
    town: _Town, hr: np.ndarray, dates: List[_dt.date], rng: np.random.Generator, seed: Sequence[int], params: SyntheticParams
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[Dict[str, float]]]:
    n = town.n
    frames = len(dates)
    sigma = psf_sigma_from_mtf(S2_NIR_MTF)
    n_fields = int(town.field_id.max()) + 1
    lrs, valids, shifts, info = [], [], [], []
    cloudy_budget = frames // 2  # at least half the revisits stay clear
    for t, date in enumerate(dates):
        season = math.sin(2 * math.pi * (date.timetuple().tm_yday - 100) / 365.0)  # peak in early summer
        veg_gain = 1.0 + 0.18 * season + rng.normal(0, 0.03)
        field_gain = rng.uniform(0.6, 1.3, size=max(n_fields, 1))
        gain_map = np.where(town.field_id >= 0, field_gain[np.maximum(town.field_id, 0)], veg_gain)
        texture = 0.02 * fractal_noise((n, n), 2.2, rng)
        frame_hr = hr + town.veg * (hr * (gain_map - 1.0) + texture)
        frame_hr = np.clip(frame_hr, 0.01, 0.8).astype(np.float32)
        shift = rng.uniform(-params.max_shift_lr * 3, params.max_shift_lr * 3, size=(1, 2))
        lr, _, _ = simulate_frames(frame_hr[None], None, frames=1, seed=(*seed, 1000 + t), sigma_hr=sigma, shifts_hr=shift)
        lr = lr[0, 0]
        h = lr.shape[0]
        gain, offset = rng.uniform(0.85, 1.15), rng.normal(0.0, 0.01)
        haze = rng.uniform(0.0, 0.04) * (1.0 + fractal_noise((h, h), 4.0, rng)).clip(0, None)
        lr = gain * lr + offset + haze
        valid = np.ones_like(lr, bool)
        kind = "clear"
        if cloudy_budget > 0 and rng.random() < params.cloud_probability:
            cloudy_budget -= 1
            field = fractal_noise((h, h), 3.5, rng)
            cover = rng.uniform(0.05, 0.3)
            valid &= field < np.quantile(field, 1.0 - cover)
            kind = "cloud"
        elif rng.random() < 0.1:
            yy, xx = np.mgrid[0:h, 0:h]
            valid &= (xx + yy) > rng.uniform(0.2, 0.5) * h  # swath-edge corner
            kind = "edge"
        lr = np.where(valid, np.clip(lr, 0.0, None), 0.0).astype(np.float32)
        lrs.append(lr[None])
        valids.append(valid)
        shifts.append(shift[0])
        info.append(dict(gain=round(float(gain), 4), offset=round(float(offset), 4), veg_gain=round(float(veg_gain), 4), kind=kind))
    return np.stack(lrs), np.stack(valids), np.array(shifts), info


# ---------------------------------------------------------------------- public API
def make_scene(
    size_hr: int = 384,
    frames: int = 9,
    seed: Union[int, Sequence[int]] = 0,
    real_world: bool = False,
    name: Optional[str] = None,
    params: Optional[SyntheticParams] = None,
) -> Scene:
    """One synthetic scene (HR ``size_hr`` px square, LR ``size_hr / 3``), reproducible by ``seed``."""
    if size_hr < 24 or size_hr % 3:
        raise ValueError(f"size_hr must be a multiple of 3 and at least 24, got {size_hr}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    params = params or SyntheticParams()
    seed_parts = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    rng = np.random.default_rng(np.random.SeedSequence([*seed_parts, 0x5EED]))
    town = _Town(size_hr, rng, params)
    town.land_cover()
    town.add_water()
    town.add_roads()
    town.add_buildings()
    town.add_shadows()
    town.add_trees()
    hr = town.finish()

    x0 = _ORIGIN_X[0] + 10.0 * rng.integers(0, int((_ORIGIN_X[1] - _ORIGIN_X[0]) / 10))
    y0 = _ORIGIN_Y[0] + 10.0 * rng.integers(0, int((_ORIGIN_Y[1] - _ORIGIN_Y[0]) / 10))
    hr_transform = Affine(HR_PIXEL_M, 0.0, x0, 0.0, -HR_PIXEL_M, y0)
    lr_transform = compose(hr_transform, Affine.scale(3))

    if real_world:
        dates = _dates(rng, frames, spread_days=330)
        lr, lr_valid, shifts, frame_info = _real_world_frames(town, hr, dates, rng, seed_parts, params)
    else:
        dates = _dates(rng, frames, spread_days=max(60, 10 * frames))
        lr, lr_valid, shifts = simulate_frames(
            hr[None], None, frames=frames, seed=(*seed_parts, 1), max_shift_lr=params.max_shift_lr
        )
        frame_info = []
    name = name or f"synth_{'_'.join(str(s) for s in seed_parts)}"
    extra = {
        "synthetic": True,
        "level": "L2A",  # drawn with surface-reflectance spectra: L2A-like, not top of atmosphere
        "version": "real-world" if real_world else "simulated",
        "seed": seed_parts,
        "shifts_hr": np.round(shifts, 4).tolist(),
        "n_buildings": len(town.building_list),
        "n_roads": len(town.road_list),
        "_buildings": town.building_list,
        "_roads": town.road_list,
    }
    if frame_info:
        extra["frames"] = frame_info
    return Scene(
        name=name,
        lr=lr.astype(np.float32),
        lr_valid=lr_valid,
        hr=hr[None],
        hr_valid=np.ones(hr.shape, bool),
        masks={"buildings": town.buildings.copy(), "roads": town.roads.copy()},
        crs=SYNTH_CRS,
        lr_transform=lr_transform,
        hr_transform=hr_transform,
        bands=["B8"],
        scale=3,
        dates=[d.isoformat() for d in dates],
        radiometric_scale=1e-4,
        split=None,
        extra=extra,
    )


def make_dataset(
    out_root: Union[str, Path],
    n_scenes: int = 10,
    size_hr: int = 384,
    seed: int = 0,
    real_world: bool = False,
    frames: int = 9,
    progress: Optional[Progress] = None,
    params: Optional[SyntheticParams] = None,
) -> List[Path]:
    """Write ``n_scenes`` synthetic scene folders under ``out_root`` plus ``split.json``."""
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be >= 1, got {n_scenes}")
    check_frames(frames)  # before any array is sized by it
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_scenes):
        name = f"synth_{i:03d}"
        if progress:
            progress(i / n_scenes, f"generating {name}")
        scene = make_scene(size_hr, frames, seed=(seed, i), real_world=real_world, name=name, params=params)
        paths.append(write_scene(scene, out_root / name))
    make_split(out_root, seed=seed)
    if progress:
        progress(1.0, f"wrote {n_scenes} scene(s) to {out_root}")
    return paths
