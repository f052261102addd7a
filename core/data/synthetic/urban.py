"""The city plan of world v3: thousands of buildings drawn at once, paved areas, roads, rails, trees.

Why not world v2's planner alone: a city holds 500 to 20 000 buildings and
v2 places them one by one (a Python call and a few array operations each),
which is fine for villages and too slow for a slum. Here every rotated
rectangle (building, container, pool, ship, wall) is collected in a batch and
stamped in one vectorised pass (:func:`footprints`: every rectangle gets a
small window of pixels, signed distances for all windows at once). Roads and
railways still go through :class:`.objects.Planner` (exact distance fields and
the road mask), so both worlds share one road model.

Mask rules (same as v2, OpenStreetMap-like): ``buildings`` = pixel centre
inside a footprint; ``roads`` = pixel centre within half the carriageway of a
road's centreline. Plazas, parking lots, yards, docks, runways and taxiways
are paved *areas*, not roads; railways are not roads; containers, ships,
pools and walls are not buildings.

Local frames: grid cities are laid out in (u, v) metres-like pixel
coordinates and mapped to the image by :class:`Warp` (a rotation plus a
smooth, small displacement), so streets bend gently and blocks follow them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .canopy import Crowns
from .geometry import noise_1d, rect_sdf, splat, tangents
from .land import COVER
from .objects import ObjectLayer, Planner, Road
from .roofs import urban_sample

__all__ = ["GROUND", "Warp", "Boxes", "CityPlan", "footprints", "STYLE", "patches", "parcels"]

#: Ground units under a city (rows of the world's ``Units``): what shows between objects.
GROUND: Dict[str, int] = {"urban": 0, "lawn": 1, "park": 2, "field": 3, "scrub": 4, "forest": 5, "bare": 6}
#: Roof shapes: flat (with a parapet rim), gable (ridge along the long axis), hip.
STYLE = {"flat": 0, "gable": 1, "hip": 2}


@dataclass
class Warp:
    """(u, v) -> image (y, x): rotation by ``theta`` about (cy, cx) plus a sum of gentle sine displacements."""

    cy: float
    cx: float
    theta: float
    amp: np.ndarray  # [K, 2] displacement amplitude (dy, dx) in px
    freq: np.ndarray  # [K, 2] spatial frequency (rad/px) along (u, v)
    phase: np.ndarray  # [K]

    @classmethod
    def random(cls, n: int, rng: np.random.Generator, bend: float, theta: Optional[float] = None) -> Warp:
        k = 3
        wl = rng.uniform(1.2, 3.0, k) * n
        direction = rng.uniform(0, 2 * np.pi, k)
        freq = np.stack([np.cos(direction), np.sin(direction)], 1) * (2 * np.pi / wl)[:, None]
        amp = rng.normal(0, bend, (k, 2)) * n
        th = rng.uniform(0, np.pi) if theta is None else theta
        return cls(n / 2 + rng.normal(0, 0.05 * n), n / 2 + rng.normal(0, 0.05 * n), th, amp, freq,
                   rng.uniform(0, 2 * np.pi, k))

    def __call__(self, u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        c, s = math.cos(self.theta), math.sin(self.theta)
        y = self.cy + u * s + v * c
        x = self.cx + u * c - v * s
        for (ay, ax), (fu, fv), ph in zip(self.amp, self.freq, self.phase):
            w = np.sin(u * fu + v * fv + ph)
            y = y + ay * w
            x = x + ax * w
        return y, x

    def angle(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Image angle (rad from +x towards +y) of the local u axis at (u, v)."""
        y0, x0 = self(u - 1.0, v)
        y1, x1 = self(u + 1.0, v)
        return np.arctan2(y1 - y0, x1 - x0)

    def line(self, u0: float, v0: float, u1: float, v1: float, step: float = 4.0) -> np.ndarray:
        """Points [K, 2] (y, x) of the local segment (u0, v0)-(u1, v1), mapped to the image."""
        m = max(int(math.hypot(u1 - u0, v1 - v0) / step), 1) + 1
        t = np.linspace(0.0, 1.0, m)
        y, x = self(u0 + t * (u1 - u0), v0 + t * (v1 - v0))
        return np.stack([y, x], 1)


def patches(n: int, size: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Voronoi cells of seeds on a jittered grid of ``size`` px: (cell id per pixel [n, n], seeds [g*g, 2] (y, x)).

    Only the 3x3 neighbouring grid cells are searched, so it costs 9 passes
    over the image whatever the number of cells (informal quarters, field parcels).
    """
    g = int(math.ceil(n / size)) + 2
    seeds = (np.stack(np.mgrid[0:g, 0:g], -1) - 1 + rng.uniform(0.1, 0.9, (g, g, 2))) * size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    ci, cj = (yy // size).astype(np.int64) + 1, (xx // size).astype(np.int64) + 1
    best = np.full((n, n), np.inf, np.float32)
    cell = np.zeros((n, n), np.int64)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            i, j = np.clip(ci + di, 0, g - 1), np.clip(cj + dj, 0, g - 1)
            d = (yy - seeds[i, j, 0]) ** 2 + (xx - seeds[i, j, 1]) ** 2
            better = d < best
            best = np.where(better, d, best)
            cell = np.where(better, i * g + j, cell)
    return cell, seeds.reshape(-1, 2)


def parcels(n: int, rng: np.random.Generator, across: Tuple[float, float], along: Tuple[float, float]) -> np.ndarray:
    """Rectangular field parcels (id per pixel): strips ``across`` px wide and ``along`` px long in a rotated frame."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    th = rng.uniform(0, np.pi)
    u = xx * math.cos(th) + yy * math.sin(th)
    v = -xx * math.sin(th) + yy * math.cos(th)
    cuts_v = np.cumsum(rng.uniform(*across, int(4 * n / across[0]) + 4)) - 2 * n
    iv = np.searchsorted(cuts_v, v)
    # every strip is cut along its length at its own places
    off = rng.uniform(0, along[1], iv.max() + 1)
    length = rng.uniform(*along, iv.max() + 1)
    iu = np.floor((u + 2 * n + off[iv]) / length[iv]).astype(np.int64)
    return iv * 10_000 + iu


_FIELDS = ("cy", "cx", "hl", "hw", "ang", "eave", "pitch", "style", "cover")


@dataclass
class Boxes:
    """A batch of rotated rectangles (px, rad) with colour [K, 4], height (m), roof pitch (deg) and style."""

    parts: List[Dict[str, np.ndarray]] = field(default_factory=list)

    def add(self, cy, cx, hl, hw, ang, colour: np.ndarray, eave=0.0, pitch=0.0, style=0, cover=COVER["building"]) -> None:
        cy = np.atleast_1d(np.asarray(cy, np.float64))
        k = cy.size
        if k == 0:
            return
        b = lambda a, t=np.float64: np.broadcast_to(np.asarray(a, t), (k,)).copy()  # noqa: E731
        self.parts.append(dict(cy=cy, cx=b(cx), hl=b(hl), hw=b(hw), ang=b(ang), eave=b(eave), pitch=b(pitch),
                               style=b(style, np.int8), cover=b(cover, np.int16),
                               colour=np.broadcast_to(np.asarray(colour, np.float32), (k, 4)).copy()))

    def arrays(self) -> Dict[str, np.ndarray]:
        if not self.parts:
            out = {f: np.zeros(0) for f in _FIELDS}
            out["colour"] = np.zeros((0, 4), np.float32)
            return out
        return {f: np.concatenate([p[f] for p in self.parts]) for f in _FIELDS + ("colour",)}

    def filter(self, keep: np.ndarray) -> None:
        a = self.arrays()
        self.parts = [{f: v[keep] for f, v in a.items()}] if len(keep) else []

    def __len__(self) -> int:
        return int(sum(p["cy"].size for p in self.parts))


def footprints(n: int, a: Dict[str, np.ndarray]) -> Tuple[np.ndarray, ...]:
    """Every (pixel, rectangle) pair near a rectangle: (flat pixel index, rectangle id, sdf, u, v).

    Rectangles are grouped by size; each group gets windows of one size, so
    the signed distances of all its rectangles are one array operation.
    """
    ext = np.hypot(a["hl"], a["hw"]) + 2.0
    out = [[], [], [], [], []]
    done = np.zeros(ext.size, bool)
    sizes = [6, 10, 16, 24, 36, 56, 88, 140, 220, 360, 600]
    sizes += sorted({int(math.ceil(2 * e + 2)) for e in ext[2 * ext + 2 > sizes[-1]]})  # huge halls, big scenes
    for k in sizes:
        sel = np.flatnonzero(~done & (2 * ext + 2 <= k))
        done[sel] = True
        for chunk in np.array_split(sel, max(1, int(sel.size * k * k // 3_000_000) + 1)):
            if chunk.size == 0:
                continue
            cy, cx = a["cy"][chunk], a["cx"][chunk]
            r0 = np.floor(cy - k / 2).astype(np.int64)
            c0 = np.floor(cx - k / 2).astype(np.int64)
            rows = r0[:, None, None] + np.arange(k)[None, :, None]
            cols = c0[:, None, None] + np.arange(k)[None, None, :]
            c, s = np.cos(a["ang"][chunk])[:, None, None], np.sin(a["ang"][chunk])[:, None, None]
            dy, dx = rows + 0.5 - cy[:, None, None], cols + 0.5 - cx[:, None, None]
            u = dx * c + dy * s
            v = -dx * s + dy * c
            qu = np.abs(u) - a["hl"][chunk][:, None, None]
            qv = np.abs(v) - a["hw"][chunk][:, None, None]
            sdf = np.hypot(np.maximum(qu, 0), np.maximum(qv, 0)) + np.minimum(np.maximum(qu, qv), 0)
            ok = (sdf < 0.5) & (rows >= 0) & (rows < n) & (cols >= 0) & (cols < n)
            rid = np.broadcast_to(chunk[:, None, None], ok.shape)
            out[0].append((rows * n + cols)[ok])
            out[1].append(rid[ok])
            out[2].append(sdf[ok].astype(np.float32))
            out[3].append(u[ok].astype(np.float32))
            out[4].append(v[ok].astype(np.float32))
    if not out[0]:
        z = np.zeros(0)
        return z.astype(np.int64), z.astype(np.int64), z, z, z
    return tuple(np.concatenate(o) for o in out)


class CityPlan:
    """Everything a city type draws: roads (planner), buildings and other boxes, paved areas, ground, trees."""

    def __init__(self, n: int, rng: np.random.Generator, pixel_m: float, water: np.ndarray) -> None:
        self.n, self.rng, self.px = n, rng, pixel_m
        self.water = water.copy()
        # min_free 0: a city is allowed to be built up; object-free land is reserved explicitly (``free``)
        self.planner = Planner(n, rng, pixel_m, 0.0, 0.0, water)
        self.free = np.zeros((n, n), bool)  # reserved object-free land: no building, no road
        self.ground = np.zeros((n, n), np.int32)  # GROUND unit per pixel
        self.buildings = Boxes()
        self.things = Boxes()  # not buildings: containers, pools, walls, aircraft
        self.afloat = Boxes()  # ships: on water, never pruned
        self.area_color = np.zeros((4, n, n), np.float32)
        self.area_alpha = np.zeros((n, n), np.float32)
        self.area_cover = np.zeros((n, n), np.int16)
        self.cars: List[np.ndarray] = []  # [K, 2] (y, x)
        self.crowns = Crowns()
        self.yy, self.xx = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
        self.taken = np.zeros((n, n), bool)  # footprints claimed by freely placed objects
        self.traffic_density = float(rng.uniform(0.3, 1.5))  # cars on streets: quiet Sunday to rush hour
        self.info: Dict[str, object] = {}

    # ------------------------------------------------------------ roads
    def road(self, pts: np.ndarray, kind: str, width_m: float, surface: str, rail: bool = False) -> Optional[Road]:
        """A road (or railway) along ``pts``, cut where it enters reserved free land (only runs >= 20 px kept)."""
        pts = np.asarray(pts, np.float64)
        n = self.n
        ij = np.clip(pts.astype(np.int64), 0, n - 1)
        inside = (pts[:, 0] > -40) & (pts[:, 0] < n + 40) & (pts[:, 1] > -40) & (pts[:, 1] < n + 40)
        ok = inside & ~self.free[ij[:, 0], ij[:, 1]]
        runs = np.flatnonzero(np.diff(np.r_[0, ok.astype(np.int8), 0]))
        last = None
        for a, b in zip(runs[::2], runs[1::2]):
            seg = pts[a:b]
            if len(seg) >= 2 and np.hypot(*(seg[-1] - seg[0])) >= 20:
                r = self.planner.road(seg, kind, width_m=width_m, surface=surface, rail=rail)
                last = r if r is not None else last
        return last

    # ------------------------------------------------------------ areas and ground
    def paint(self, mask_box: Tuple[slice, slice], a: np.ndarray, surface: str, cover: int = COVER["paved"],
              texture: float = 0.04) -> None:
        """A paved area (coverage ``a`` in ``mask_box``) of one surface, under roads and buildings."""
        if not (a > 0).any():
            return
        rng = self.rng
        col = urban_sample(surface, 1, rng)[0][:, None, None] * (1 + texture * rng.standard_normal(a.shape))[None]
        self.area_color[(slice(None),) + mask_box] = col * a + self.area_color[(slice(None),) + mask_box] * (1 - a)
        self.area_alpha[mask_box] = a + self.area_alpha[mask_box] * (1 - a)
        self.area_cover[mask_box] = np.where(a >= 0.5, cover, self.area_cover[mask_box])

    def rect_sdf(self, cy: float, cx: float, hl: float, hw: float, ang: float, pad: float = 1.0):
        """(box, sdf) of a rotated rectangle on the grid, or (None, None) if it misses the scene."""
        n = self.n
        ext = math.hypot(hl, hw) + pad + 1
        r0, r1 = max(int(cy - ext), 0), min(int(cy + ext) + 1, n)
        c0, c1 = max(int(cx - ext), 0), min(int(cx + ext) + 1, n)
        if r0 >= r1 or c0 >= c1:
            return None, None
        box = (slice(r0, r1), slice(c0, c1))
        sdf, _u, _v = rect_sdf(self.yy[box], self.xx[box], cy, cx, hl, hw, ang)
        return box, sdf

    def paint_rect(self, cy, cx, hl, hw, ang, surface: str, cover: int = COVER["paved"], cars: float = 0.0) -> None:
        """A paved rectangle; ``cars``: share of it covered by parked cars (parking lots)."""
        box, sdf = self.rect_sdf(cy, cx, hl, hw, ang)
        if box is None:
            return
        self.paint(box, np.clip(0.5 - sdf, 0, 1), surface, cover)
        if cars > 0:  # rows of cars, 2.5 m apart, in bays 5 m deep
            rng = self.rng
            du, dv = 2.5 / self.px, 5.5 / self.px
            uu, vv = np.meshgrid(np.arange(-hl + du, hl - du / 2, du), np.arange(-hw + dv / 2, hw - dv / 4, dv))
            keep = rng.random(uu.shape) < cars
            c, s = math.cos(ang), math.sin(ang)
            y = cy + uu[keep] * s + vv[keep] * c
            x = cx + uu[keep] * c - vv[keep] * s
            self.cars.append(np.stack([y, x], 1))

    def ground_rect(self, cy, cx, hl, hw, ang, unit: str) -> None:
        """Set the ground unit (lawn, park, ...) inside a rectangle."""
        box, sdf = self.rect_sdf(cy, cx, hl, hw, ang, 0.0)
        if box is not None:
            self.ground[box] = np.where(sdf <= 0, GROUND[unit], self.ground[box])

    def claim(self, cy: float, cx: float, hl: float, hw: float, ang: float, pad: float = 1.0) -> bool:
        """Reserve a rectangle (+``pad`` px) if it is inside the scene and touches nothing forbidden or taken.

        For the few hundred objects that are placed freely (villas, halls, ships),
        not on a grid: grid cities are overlap-free by construction.
        """
        box, sdf = self.rect_sdf(cy, cx, hl, hw, ang, pad + 1)
        if box is None:
            return False
        near = sdf <= pad
        p = self.planner
        bad = p.occupied[box] | self.free[box] | self.water[box] | p.rail_mask[box]
        if (self.taken[box] & near).any() or (bad & (sdf <= 0.5)).any():
            return False
        self.taken[box] |= near
        return True

    # ------------------------------------------------------------ trees
    def trees(self, y: np.ndarray, x: np.ndarray, cls: int, height: Tuple[float, float], kind: int = 0) -> None:
        y, x = np.asarray(y, np.float32).ravel(), np.asarray(x, np.float32).ravel()
        ok = (y >= 0) & (y < self.n) & (x >= 0) & (x < self.n)
        if ok.any():
            self.crowns.add(y[ok], x[ok], cls, self.rng.uniform(*height, int(ok.sum())), kind)

    def street_trees(self, road: Road, spacing_m: float, cls: int = 2, height=(8.0, 16.0), gap_m: float = 2.5) -> None:
        """A row of trees on each side of ``road``, ``gap_m`` beyond the kerb."""
        if road is None or len(road.points) < 3:
            return
        from .geometry import resample

        pts = resample(road.points, spacing_m / self.px)
        t = tangents(pts)
        for side in (-1, 1):
            q = pts + np.stack([t[:, 1], -t[:, 0]], 1) * side * (road.width / 2 + gap_m / self.px)
            keep = self.rng.random(len(q)) < 0.85
            self.trees(q[keep, 0], q[keep, 1], cls, height)

    def add_water(self, mask: np.ndarray) -> None:
        """Open water added by a city type (a harbour): nothing is built or driven on it."""
        self.water |= mask
        self.planner.blocked |= mask
        self.planner.occupied |= mask

    # ------------------------------------------------------------ checks
    def forbidden(self) -> np.ndarray:
        """Where no building may stand: carriageways and rails (+1 px), water, reserved free land."""
        p = self.planner
        return p.occupied | self.free | self.water | (p.rail_mask)

    def prune(self) -> int:
        """Drop buildings (and things) whose footprint (+0.5 px) touches forbidden pixels; returns how many."""
        bad_px = self.forbidden().ravel()
        dropped = 0
        for boxes in (self.buildings, self.things):
            a = boxes.arrays()
            if a["cy"].size == 0:
                continue
            idx, rid, sdf, _u, _v = footprints(self.n, a)
            hit = bad_px[idx] & (sdf <= 0.3)
            bad = np.zeros(a["cy"].size, bool)
            bad[np.unique(rid[hit])] = True
            dropped += int(bad.sum())
            boxes.filter(~bad)
        return dropped

    # ------------------------------------------------------------ drawing
    def draw(self, rng: np.random.Generator) -> ObjectLayer:
        """Rasterise areas, rails, roads, cars, things and buildings into one :class:`ObjectLayer`."""
        n = self.n
        color = self.area_color.copy()
        alpha = self.area_alpha.copy()
        cover = self.area_cover.copy()
        height = np.zeros((n, n), np.float32)
        normal = np.zeros((3, n, n), np.float32)
        normal[2] = 1.0

        def over(box, a, col, code) -> None:
            a = a.astype(np.float32)
            color[(slice(None),) + box] = col * a + color[(slice(None),) + box] * (1 - a)
            alpha[box] = a + alpha[box] * (1 - a)
            cover[box] = np.where(a >= 0.5, code, cover[box])

        for rail in self.planner.rails:
            d = np.where(np.isfinite(rail.dist), rail.dist, 1e3)
            a = np.clip(rail.width / 2 - d + 0.5, 0, 1)
            col = urban_sample("ballast", 1, rng)[0][:, None, None] * np.ones_like(d)[None]
            # tracks 4.5 m apart across a yard; rails and sleepers darken each track's centre
            pitch = 4.5 / self.px
            q = ((d + pitch / 2) % pitch) - pitch / 2
            col = col * (1 - 0.25 * np.exp(-(q / 0.45) ** 2))[None]
            over(rail.box, a, col, COVER["railway"])
        for road in sorted(self.planner.roads, key=lambda r: r.width):
            d, al = road.dist, road.along
            a = np.clip(road.width / 2 - d + 0.5, 0, 1)
            base = urban_sample(road.surface, 1, rng)[0]
            patches = noise_1d(int(al.max()) + 16, rng.uniform(3, 12), rng)
            mod = 1 + 0.05 * patches[np.clip(al.astype(np.int64), 0, patches.size - 1)]
            mod = mod * (1 + 0.015 * rng.standard_normal(d.shape))
            col = base[:, None, None] * mod[None]
            lanes = int(road.width * self.px // 3.5)
            if lanes >= 2 and road.surface in ("asphalt_fresh", "asphalt_aged", "concrete_road"):
                # lane lines (0.15 m, dashed) and edge lines: sub-pixel, they brighten their pixels a little
                paint = np.zeros_like(d)
                for k in range(1, lanes):
                    off = abs(-road.width / 2 + k * road.width / lanes)
                    dash = ((al * self.px) % 12.0) < 4.5
                    paint = np.maximum(paint, np.exp(-((d - off) / 0.25) ** 2) * dash)
                paint = np.maximum(paint, np.exp(-((d - (road.width / 2 - 0.15)) / 0.25) ** 2))
                col = col + 0.08 * paint[None] * (0.6 - col)
            over(road.box, a, col, COVER["road"])
        self._traffic(rng)
        if self.cars:
            pts = np.concatenate(self.cars)
            pts = pts[(pts[:, 0] >= 0) & (pts[:, 0] < n) & (pts[:, 1] >= 0) & (pts[:, 1] < n)]
            if len(pts):
                paint_names = ("white_paint", "bitumen", "metal_galvanised", "metal_painted_red", "metal_painted_blue")
                k = rng.choice(len(paint_names), size=len(pts), p=[0.3, 0.3, 0.25, 0.08, 0.07])
                cols = np.stack([urban_sample(paint_names[j], 1, rng)[0] for j in k], 1)  # [4, K]
                cover_car = 0.55 * np.ones(len(pts))
                w = splat((n, n), pts[:, 0], pts[:, 1], np.concatenate([cols * cover_car, cover_car[None]]))
                a = np.clip(w[4], 0, 0.8)
                col = w[:4] / np.maximum(w[4], 1e-6)
                color[:] = col * a + color * (1 - a)
                alpha[:] = a + alpha * (1 - a)
        for boxes, is_building in ((self.afloat, False), (self.things, False), (self.buildings, True)):
            self._stamp(boxes, rng, color, alpha, cover, height, normal, is_building)
        mask = self._mask(self.buildings)
        return ObjectLayer(color, alpha, height, normal, cover, self.planner.roads_mask.copy(), mask)

    def _traffic(self, rng: np.random.Generator) -> None:
        """Cars on paved streets (per 100 m of road: motorways 3, arterials 2, other streets 0.7), inside the carriageway."""
        per_100m = {"motorway": 3.0, "motorway_link": 1.0, "primary": 2.0, "secondary": 1.5}
        for road in self.planner.roads:
            if road.surface not in ("asphalt_fresh", "asphalt_aged", "concrete_road") or road.width * self.px < 5:
                continue
            p = road.points
            seg = np.hypot(*(p[1:] - p[:-1]).T)
            cum = np.concatenate([[0.0], np.cumsum(seg)])
            k = rng.poisson(cum[-1] * self.px / 100.0 * per_100m.get(road.kind, 0.7) * self.traffic_density)
            if k == 0 or cum[-1] <= 0:
                continue
            s = rng.uniform(0, cum[-1], k)
            y, x = np.interp(s, cum, p[:, 0]), np.interp(s, cum, p[:, 1])
            t = tangents(p)
            ty, tx = np.interp(s, cum, t[:, 0]), np.interp(s, cum, t[:, 1])
            off = rng.uniform(-0.42, 0.42, k) * road.width
            self.cars.append(np.stack([y + tx * off, x - ty * off], 1))

    def _mask(self, boxes: Boxes) -> np.ndarray:
        idx, _rid, sdf, _u, _v = footprints(self.n, boxes.arrays())
        mask = np.zeros(self.n * self.n, bool)
        mask[idx[sdf <= 0]] = True
        return mask.reshape(self.n, self.n)

    def _stamp(self, boxes: Boxes, rng, color, alpha, cover, height, normal, is_building: bool) -> None:
        """Composite one batch: per pixel the top rectangle (a full pixel beats an edge; later beats earlier)."""
        n = self.n
        a_ = boxes.arrays()
        if a_["cy"].size == 0:
            return
        idx, rid, sdf, u, v = footprints(n, a_)
        if idx.size == 0:
            return
        cov = np.clip(0.5 - sdf, 0, 1)
        key = (cov >= 0.5).astype(np.int64) * (1 << 40) + rid
        order = np.lexsort((key, idx))
        top = np.r_[idx[order][1:] != idx[order][:-1], True]
        win = order[top]
        pix, r = idx[win], rid[win]
        a = np.clip(np.bincount(idx, cov, n * n)[pix], 0, 1).astype(np.float32)
        col = a_["colour"][r].T.copy()  # [4, K]
        style = a_["style"][r]
        hl, hw = a_["hl"][r], a_["hw"][r]
        uu, vv, s = np.abs(u[win]), np.abs(v[win]), sdf[win]
        # flat roofs: a parapet rim and a little texture; pitched roofs: planes lit by the sun
        rim = (style == STYLE["flat"]) & (s > -1.0) & is_building
        col *= np.where(rim, 0.88, 1.0)[None] * (1 + 0.025 * rng.standard_normal(pix.size))[None]
        pitch = np.radians(a_["pitch"][r])
        across = hw - vv  # distance to the long eave
        along = hl - uu
        hip_end = (style == STYLE["hip"]) & (along < across)
        run = np.where(hip_end, along, across)
        rise = np.where(style == STYLE["flat"], 0.0, np.clip(run, 0, None) * self.px * np.tan(pitch))
        h = (a_["eave"][r] + rise) * (a >= 0.5)
        ang = a_["ang"][r]
        ca, sa = np.cos(ang), np.sin(ang)
        sv = np.where(v[win] >= 0, 1.0, -1.0)
        su = np.where(u[win] >= 0, 1.0, -1.0)
        # outward tilt direction in (east, north): +v is (-sin, -cos), +u is (cos, -sin)
        te = np.where(hip_end, su * ca, -sv * sa)
        tn = np.where(hip_end, -su * sa, -sv * ca)
        tilt = np.where(style == STYLE["flat"], 0.0, np.sin(pitch))
        flat_col = color.reshape(4, -1)
        flat_col[:, pix] = col * a + flat_col[:, pix] * (1 - a)
        al = alpha.reshape(-1)
        al[pix] = a + al[pix] * (1 - a)
        cv = cover.reshape(-1)
        cv[pix] = np.where(a >= 0.5, a_["cover"][r], cv[pix])
        hg = height.reshape(-1)
        hg[pix] = np.maximum(hg[pix], h)
        full = a >= 0.5
        nrm = normal.reshape(3, -1)
        nrm[0, pix[full]] = (tilt * te)[full]
        nrm[1, pix[full]] = (tilt * tn)[full]
        nrm[2, pix[full]] = np.cos(np.where(style == STYLE["flat"], 0.0, pitch))[full]
