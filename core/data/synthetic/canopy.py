"""Trees and bushes of world v2: crowns as points, drawn as domes, with heights for shading and shadows.

Why points: at 3.33 m a crown of 3-10 m covers 1-3 pixels. A forest seen
that way is a field of separate bright sunlit crowns with dark gaps and
shadows between them, and scrub is clumps of bushes in grass: discrete
objects, not a band-pass noise (thresholded noise draws the worm-like mazes
that we want networks to stop inventing). Every crown is a point with a
radius class, a height and a kind; each radius class is splatted and
convolved with a dome kernel (FFT), which gives at once crown coverage,
mean height, crown relief (for sun/shade sides) and the share of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from .geometry import convolve_small, dome_kernel, splat
from .land import COVER, FOREST_COVERS, Units
from .towns import fractal_noise

__all__ = ["SPACINGS", "Crowns", "Canopy", "forest_crowns", "scrub_crowns", "boundary_crowns", "draw_canopy"]

#: Crown spacing classes (HR px); each class has crown radius 0.62 x spacing.
SPACINGS = np.array([1.0, 1.45, 2.0, 2.8], np.float32)
_KIND = {"deciduous": 0, "conifer": 1, "shrub": 2}


@dataclass
class Crowns:
    """A set of crowns: centres (px), spacing class index, height (m), kind (0 deciduous, 1 conifer, 2 shrub)."""

    y: List[np.ndarray] = field(default_factory=list)
    x: List[np.ndarray] = field(default_factory=list)
    cls: List[np.ndarray] = field(default_factory=list)
    height: List[np.ndarray] = field(default_factory=list)
    kind: List[np.ndarray] = field(default_factory=list)

    def add(self, y: np.ndarray, x: np.ndarray, cls: np.ndarray, height: np.ndarray, kind: np.ndarray) -> None:
        k = len(y)
        b = lambda a: np.broadcast_to(np.asarray(a), (k,)).copy()  # noqa: E731
        self.y.append(np.asarray(y, np.float32))
        self.x.append(np.asarray(x, np.float32))
        self.cls.append(b(cls).astype(np.int8))
        self.height.append(b(height).astype(np.float32))
        self.kind.append(b(kind).astype(np.int8))

    def arrays(self) -> Tuple[np.ndarray, ...]:
        if not self.y:
            z = np.zeros(0, np.float32)
            return z, z, z.astype(np.int8), z, z.astype(np.int8)
        return tuple(np.concatenate(v) for v in (self.y, self.x, self.cls, self.height, self.kind))


@dataclass
class Canopy:
    """Per-pixel trees: coverage, height (m), crown relief (m), share of conifer and shrub, crown tone."""

    alpha: np.ndarray
    height: np.ndarray
    relief: np.ndarray
    conifer: np.ndarray
    shrub: np.ndarray
    tone: np.ndarray


def _jittered(n: int, spacing: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    g = int(np.ceil(n / spacing))
    iy, ix = np.mgrid[0:g, 0:g]
    y = (iy + rng.uniform(0.15, 0.85, iy.shape)) * spacing
    x = (ix + rng.uniform(0.15, 0.85, ix.shape)) * spacing
    ok = (y < n) & (x < n)
    return y[ok].astype(np.float32), x[ok].astype(np.float32)


def _lookup(grid: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    n = grid.shape[0]
    return grid[np.clip(y.astype(np.int64), 0, n - 1), np.clip(x.astype(np.int64), 0, grid.shape[1] - 1)]


def forest_crowns(crowns: Crowns, units: Units, labels: np.ndarray, clear: np.ndarray, rng: np.random.Generator) -> None:
    """Crowns of every forest stand on a jittered grid of the stand's spacing, with gaps and mixed species."""
    n = labels.shape[0]
    gaps = fractal_noise((n, n), 2.6, rng)
    species = fractal_noise((n, n), 2.2, rng)  # clustered species in mixed stands
    cls_u = np.argmin(np.abs(units.stand_spacing[:, None] - SPACINGS[None]), axis=1)
    for c, s in enumerate(SPACINGS):
        y, x = _jittered(n, float(s), rng)
        u = _lookup(labels, y, x)
        keep = (units.stand[u] > 0) & (cls_u[u] == c) & ~_lookup(clear, y, x)
        keep &= rng.random(y.size) < np.clip(0.97 - 0.5 * np.clip(_lookup(gaps, y, x) - 1.3, 0, None), 0, 1)
        y, x, u = y[keep], x[keep], u[keep]
        stand = units.stand[u]
        conifer = (stand == 2) | ((stand == 3) & (_lookup(species, y, x) > 0.0))
        h = units.stand_height[u] * rng.uniform(0.65, 1.15, y.size)  # uneven tops: crowns shade their neighbours
        crowns.add(y, x, c, h, np.where(conifer, _KIND["conifer"], _KIND["deciduous"]))


def scrub_crowns(crowns: Crowns, units: Units, labels: np.ndarray, clear: np.ndarray, rng: np.random.Generator) -> None:
    """Bushes in clumps: a clustered point process (dense where a smooth field is high, none elsewhere)."""
    n = labels.shape[0]
    clump = fractal_noise((n, n), 2.4, rng)
    for c, p_cls in ((0, 0.45), (1, 0.35), (2, 0.2)):
        y, x = _jittered(n, float(SPACINGS[c]) * 1.1, rng)
        u = _lookup(labels, y, x)
        dens = units.scrub[u]
        field_v = _lookup(clump, y, x)
        prob = dens * p_cls * 2.2 / (1.0 + np.exp(-(field_v - (1.0 - 2.0 * dens)) / 0.25))
        keep = (dens > 0) & (rng.random(y.size) < prob) & ~_lookup(clear, y, x)
        h = rng.uniform(1.5, 5.0, int(keep.sum())) * (1 + 0.4 * c)
        kind = np.where(rng.random(h.size) < 0.12, _KIND["deciduous"], _KIND["shrub"])
        crowns.add(y[keep], x[keep], c, h, kind)


def boundary_crowns(
    crowns: Crowns, where: np.ndarray, density: float, rng: np.random.Generator, height: Tuple[float, float],
    classes: Tuple[int, ...] = (1, 2), clear: np.ndarray = None,
) -> None:
    """Crowns on a random subset of the pixels of ``where`` (hedgerows, river banks, forest edges, gardens)."""
    ys, xs = np.nonzero(where)
    if ys.size == 0:
        return
    keep = rng.random(ys.size) < density
    y = ys[keep] + rng.uniform(0.1, 0.9, int(keep.sum()))
    x = xs[keep] + rng.uniform(0.1, 0.9, int(keep.sum()))
    if clear is not None:
        ok = ~_lookup(clear, y, x)
        y, x = y[ok], x[ok]
    cls = rng.choice(classes, size=y.size)
    crowns.add(y, x, cls, rng.uniform(*height, y.size), _KIND["deciduous"])


def draw_canopy(crowns: Crowns, n: int, rng: np.random.Generator, pixel_m: float) -> Canopy:
    """Rasterise crowns: per radius class one splat per channel, convolved with that class's dome (FFT)."""
    y, x, cls, height, kind = crowns.arrays()
    tone_w = np.exp(0.11 * rng.standard_normal(y.size)).astype(np.float32)  # crowns differ in tone
    shape = (n, n)
    unit = np.zeros(shape, np.float32)
    hsum = np.zeros(shape, np.float32)
    csum = np.zeros(shape, np.float32)
    ssum = np.zeros(shape, np.float32)
    tsum = np.zeros(shape, np.float32)
    relief = np.zeros(shape, np.float32)
    for c, s in enumerate(SPACINGS):
        sel = cls == c
        if not sel.any():
            continue
        yy, xx = y[sel], x[sel]
        weights = np.stack([
            np.ones(int(sel.sum()), np.float32),
            height[sel],
            (kind[sel] == _KIND["conifer"]).astype(np.float32),
            (kind[sel] == _KIND["shrub"]).astype(np.float32),
            tone_w[sel],
        ])
        radius = 0.62 * float(s)
        conv = convolve_small(splat(shape, yy, xx, weights), dome_kernel(radius))
        unit += conv[0]
        hsum += conv[1]
        csum += conv[2]
        ssum += conv[3]
        tsum += conv[4]
        # crowns are about as deep as wide; overlapping domes saturate instead of stacking
        relief = np.maximum(relief, (1.0 - np.exp(-1.8 * conv[0])) * radius * pixel_m)
    safe = np.maximum(unit, 1e-6)
    alpha = np.clip((unit - 0.1) / 0.32, 0.0, 1.0)
    mean_h = np.where(unit > 1e-3, hsum / safe, 0.0)
    conifer = np.clip(np.where(unit > 1e-3, csum / safe, 0.0), 0, 1)
    shrub = np.clip(np.where(unit > 1e-3, ssum / safe, 0.0), 0, 1)
    tone = np.where(unit > 1e-3, tsum / safe, 1.0)
    # conifer crowns are deeper (cones), so their sides are shaded more
    relief = relief * (1.0 + 0.6 * conifer)
    tree_h = mean_h * (0.7 + 0.3 * np.clip(unit, 0, 1)) * (alpha > 0.02)
    return Canopy(alpha.astype(np.float32), tree_h.astype(np.float32), relief.astype(np.float32),
                  conifer.astype(np.float32), shrub.astype(np.float32), tone.astype(np.float32))


def tree_cover_codes(canopy: Canopy, units: Units, labels: np.ndarray) -> np.ndarray:
    """Land-cover code of tree pixels (0 elsewhere): the stand's forest class, or tree / shrub outside forests."""
    ground = units.cover[labels]
    in_forest = np.isin(ground, FOREST_COVERS)
    code = np.where(in_forest, ground, np.where(canopy.shrub > 0.5, COVER["shrub"], COVER["tree"]))
    return np.where(canopy.alpha >= 0.5, code, 0).astype(np.int16)
