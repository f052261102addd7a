"""Relief and water of world v2: a fractal DEM, a river with natural banks, lakes and ponds.

Why: hills shade every band (and forests more than fields), rivers and lake
shores are the sharpest long edges in rural land after parcel boundaries, and
real shorelines are neither circles nor bands of constant width. The DEM is
1/f^beta noise (beta about 3.5: rolling land), a river is a smooth curve whose
two banks wander independently, and a lake is a level set of a smooth random
basin, so its outline is irregular at every scale and it gains or loses a
strip of shore when its level changes between dates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .geometry import gaussian_fft, noise_1d, polyline_field, smooth_curve
from .spectra import sample
from .towns import fractal_noise

__all__ = ["Curve", "Water", "make_dem", "make_curve", "make_water"]


@dataclass
class Curve:
    """A curve monotone along one image axis: ``across = c(along)``; also a polyline [K, 2] (y, x).

    ``axis`` 0: ``y = c(x)`` (runs west-east); 1: ``x = c(y)`` (runs north-south).
    Monotone curves split the scene in two sides exactly and cheaply, which
    is how through roads, railways and rivers cut the parcel mosaic.
    """

    axis: int
    t: np.ndarray  # along-axis samples (px)
    c: np.ndarray  # across-axis position at t (px)

    @property
    def points(self) -> np.ndarray:
        return np.stack([self.c, self.t], 1) if self.axis == 0 else np.stack([self.t, self.c], 1)

    def side(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        """1 where a pixel lies on the larger-coordinate side of the curve, else 0 (int32)."""
        along, across = (xx, yy) if self.axis == 0 else (yy, xx)
        return (across > np.interp(along, self.t, self.c)).astype(np.int32)

    def offset(self, d: float) -> Curve:
        """The curve shifted by ``d`` px across its axis (for twin carriageways, rails)."""
        return Curve(self.axis, self.t.copy(), self.c + d)


@dataclass
class Water:
    """Water of one scene. ``lake_depth``: basin depth (m) at the nominal level, <= 0 on land."""

    lake_depth: np.ndarray
    shore_slope: np.ndarray  # |grad lake_depth| (m per px): turns a depth into a distance to the shore
    river_alpha: np.ndarray  # static river coverage 0..1
    river_dist: np.ndarray  # distance to the river centreline (px, inf far away)
    spec: np.ndarray  # [4, H, W] deep-water spectrum per pixel
    rivers: List[Curve] = field(default_factory=list)
    river_width: List[float] = field(default_factory=list)
    level_amplitude_m: float = 0.3  # seasonal level swing of the lakes

    def alpha(self, level_m: float = 0.0) -> np.ndarray:
        """Water coverage on a date whose lake level is ``level_m`` above nominal (antialiased)."""
        lake = np.clip((self.lake_depth + level_m) / self.shore_slope + 0.5, 0.0, 1.0)
        return np.maximum(lake, self.river_alpha)


def make_dem(n: int, rng: np.random.Generator, relief_m: float) -> np.ndarray:
    """Terrain height (m) on the HR grid: rolling 1/f^3.6 noise without its finest scales.

    Slopes, not heights, make the shading, and a 1/f^3.6 surface still has
    most of its slope variance at the pixel scale, which would crumple every
    field. Farmland is smooth over tens of metres (ploughing, soil creep), so
    the DEM is low-passed (sigma 25 m) and renormalised.
    """
    dem = gaussian_fft(fractal_noise((n, n), 3.6, rng), 7.5)
    dem = dem / (dem.std() + 1e-9)
    return (relief_m * 0.5 * dem).astype(np.float32)


def make_curve(
    n: int, rng: np.random.Generator, wiggle: float, spacing: Tuple[float, float], axis: Optional[int] = None,
    anchor: Optional[Tuple[float, float]] = None, step: float = 2.0,
) -> Curve:
    """A gently curving line across the scene through random waypoints (Catmull-Rom, monotone).

    ``wiggle``: lateral jitter of the waypoints (px); ``spacing``: range of the
    waypoint spacing along the axis (px); ``anchor``: a (y, x) point it passes near.
    """
    axis = int(rng.integers(2)) if axis is None else axis
    pad = 0.15 * n + 20
    if anchor is not None:
        a_along, a_across = (anchor[1], anchor[0]) if axis == 0 else (anchor[0], anchor[1])
    else:
        a_along, a_across = rng.uniform(0.2, 0.8) * n, rng.uniform(0.15, 0.85) * n
    slope = rng.uniform(-0.45, 0.45)
    ts = [a_along]
    while ts[-1] < n + pad:
        ts.append(ts[-1] + rng.uniform(*spacing))
    while ts[0] > -pad:
        ts.insert(0, ts[0] - rng.uniform(*spacing))
    ts = np.asarray(ts)
    cs = a_across + slope * (ts - a_along) + rng.normal(0.0, wiggle, ts.size)
    cs[np.argmin(np.abs(ts - a_along))] = a_across
    pts = smooth_curve(np.stack([cs, ts], 1), step=step)
    order = np.argsort(pts[:, 1], kind="stable")
    t, c = pts[order, 1], pts[order, 0]
    keep = np.concatenate([[True], np.diff(t) > 1e-6])
    return Curve(axis, t[keep], c[keep])


def _meander(n: int, rng: np.random.Generator, width: float) -> Curve:
    """A river: its heading wanders as a smooth random process, so bends are irregular, not a sine.

    The bend length scales with the width (meanders of small streams are
    tighter); the heading stays within +-70 degrees of the main axis, which
    keeps the curve monotone along it.
    """
    axis = int(rng.integers(2))
    pad = 40.0
    step = 1.5
    t = np.arange(-pad, n + pad, step)
    corr = width * rng.uniform(2.0, 4.0) / step + 8.0
    heading = rng.uniform(-0.5, 0.5) + rng.uniform(0.5, 0.9) * noise_1d(t.size, corr, rng)
    heading += 0.25 * noise_1d(t.size, corr / 3.0, rng)
    heading = np.clip(heading, -1.2, 1.2)
    c = np.cumsum(np.tan(heading)) * step
    c = c - np.interp(rng.uniform(0.2, 0.8) * n, t, c) + rng.uniform(0.2, 0.8) * n
    return Curve(axis, t, c)


def make_water(
    n: int, rng: np.random.Generator, dem: np.ndarray, rivers: int, lakes: int, ponds: int, lake_size: float
) -> Tuple[Water, np.ndarray]:
    """Rivers, lakes and ponds; returns the water and the DEM with valleys carved and lake floors flat.

    ``lake_size``: typical lake radius as a share of the scene side.
    """
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    dem = dem.copy()
    river_alpha = np.zeros((n, n), np.float32)
    river_dist = np.full((n, n), np.inf, np.float32)
    curves: List[Curve] = []
    widths: List[float] = []
    spec = np.zeros((4, n, n), np.float32)
    kinds = np.zeros((n, n), np.int8)  # 0 lake/none, 1 river
    for _ in range(rivers):
        width = float(rng.choice([rng.uniform(1.2, 3.0), rng.uniform(3.5, 9.0), rng.uniform(9.0, 16.0)], p=[0.45, 0.4, 0.15]))
        curve = _meander(n, rng, width)
        pts = curve.points[::2]  # ~3 px chords: the curve is smooth, a chord strays < 0.1 px
        dist, along, side = polyline_field(pts, width + 6.0, (n, n))
        n_al = int(along.max()) + 8
        bank_l = noise_1d(n_al, rng.uniform(4, 14), rng)
        bank_r = noise_1d(n_al, rng.uniform(4, 14), rng)
        wid = noise_1d(n_al, rng.uniform(20, 60), rng)
        idx = np.clip(along.astype(np.int64), 0, n_al - 1)
        half = 0.5 * width * (1 + 0.2 * wid[idx])
        half = half + np.where(side > 0, bank_l[idx], bank_r[idx]) * min(0.12 * width + 0.25, 1.2)
        half = np.maximum(half, 0.45)
        alpha = np.where(np.isfinite(dist), np.clip(half - dist + 0.5, 0.0, 1.0), 0.0).astype(np.float32)
        river_alpha = np.maximum(river_alpha, alpha)
        river_dist = np.minimum(river_dist, dist)
        # the valley: a smooth trough across the curve (distance measured across its axis)
        along_ax, across_ax = (xx, yy) if curve.axis == 0 else (yy, xx)
        slope = np.gradient(curve.c, curve.t)
        off = (across_ax - np.interp(along_ax, curve.t, curve.c)) / np.sqrt(1 + np.interp(along_ax, curve.t, slope) ** 2)
        valley = 0.4 * width + 25.0
        dem -= (rng.uniform(2, 6) * np.exp(-(off / valley) ** 2)).astype(np.float32)
        kinds[alpha > 0] = 1
        curves.append(curve)
        widths.append(width)
    lake_depth = np.full((n, n), -10.0, np.float32)
    basins = [(lake_size * n * rng.uniform(0.5, 1.4), 1.0) for _ in range(lakes)]
    basins += [(rng.uniform(3.0, 9.0), 0.7) for _ in range(ponds)]  # kettle holes, farm ponds: 10-60 m
    for radius, rough in basins:
        # lakes lie in hollows: the lowest of a few candidate centres
        cand = rng.uniform(0.02, 0.98, (6, 2)) * n
        cy, cx = cand[np.argmin(dem[cand[:, 0].astype(int), cand[:, 1].astype(int)])]
        ang = rng.uniform(0, np.pi)
        ea = rng.uniform(1.0, 2.2)
        c, s = math.cos(ang), math.sin(ang)
        u = ((xx - cx) * c + (yy - cy) * s) / (radius * ea)
        v = (-(xx - cx) * s + (yy - cy) * c) / radius
        wobble = fractal_noise((n, n), rng.uniform(3.0, 3.5), rng)  # bays and points, smooth at the pixel scale
        basin = 1.0 - (u * u + v * v) + rough * 0.32 * wobble  # > 0 inside: a level set of a smooth random field
        depth = np.where(basin > -1.0, basin * rng.uniform(2.0, 8.0), -10.0).astype(np.float32)
        lake_depth = np.maximum(lake_depth, depth)
    if (lake_depth > 0).any():
        floor = float(np.percentile(dem[lake_depth > 0], 20))
        # water is flat: ease the land down to one level over a smooth ring (~100 m) around each shore,
        # smooth so that the shore's irregular outline does not turn into shaded ridges
        w = np.clip(2.0 * gaussian_fft((lake_depth > -0.5).astype(np.float32), 10.0), 0.0, 1.0)
        dem = (dem * (1 - w) + floor * w - 0.2 * np.clip(lake_depth, 0, None)).astype(np.float32)
    gy, gx = np.gradient(lake_depth)
    slope_m = np.maximum(np.hypot(gy, gx), 0.02).astype(np.float32)  # m per px at the shore
    # deep-water spectra: one type per scene for lakes, turbid or clear rivers; smooth plumes within
    lake_type = str(rng.choice(["water_clear", "water_humic", "water_green"], p=[0.5, 0.2, 0.3]))
    river_type = str(rng.choice(["water_turbid", "water_clear", "water_green"], p=[0.6, 0.25, 0.15]))
    lake_s = sample(lake_type, 1, rng)[0]
    river_s = sample(river_type, 1, rng)[0]
    plume = 1.0 + 0.12 * fractal_noise((n, n), 3.4, rng)
    for b in range(4):
        spec[b] = np.where(kinds == 1, river_s[b], lake_s[b]) * plume
    # shallow water shows its bottom: adds light in the visible, almost none in NIR
    bottom = np.array([0.030, 0.040, 0.025, 0.004], np.float32)
    atten = np.array([1.2, 1.0, 1.8, 6.0], np.float32)  # 1/m, strongest in red and NIR
    shallow = np.clip(lake_depth, 0.0, None)
    for b in range(4):
        spec[b] += np.where(kinds == 1, 0.12 * bottom[b], bottom[b] * np.exp(-atten[b] * shallow * 1.5))
    water = Water(lake_depth, slope_m, river_alpha, river_dist, spec, curves, widths, float(rng.uniform(0.1, 0.45)))
    return water, dem
