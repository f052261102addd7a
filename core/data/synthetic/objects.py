"""The objects of world v2 (roads, railways, buildings, yards) and the planner that keeps land object-free.

Why a module of its own: every settlement generator (:mod:`.settlements`)
proposes objects one by one, and one place must decide whether each fits
(no overlap with water, roads or other buildings; the object-free budget)
and, at the end, draw them all with antialiased edges, roof planes and heights.

Mask semantics (OpenStreetMap, as rasterised by :mod:`core.data.vectors`):

* ``buildings``: the footprint of every building (pixel centre inside);
* ``roads``: the carriageway of every mapped highway, a pixel whose centre
  lies within half the carriageway width of the centreline. Unpaved farm and
  forest tracks *are* roads (OSM ``highway=track``, 3-4 m); grass balks and
  field margins are not; railways are not (OSM ``railway=rail``); nor are
  paved yards, squares and parking lots, which OSM maps as areas, not highways.

While planning, :class:`Planner` keeps the set of pixels within ``margin`` px
of any building or road and refuses an object that would leave less than
``min_free`` of the scene object-free, so the rule holds by construction
(the exact shapes are used; a shape's margin contains its mask's margin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from .canopy import Crowns
from .geometry import noise_1d, polyline_field, rect_sdf, resample
from .land import COVER
from .spectra import sample

__all__ = ["ROAD_KINDS", "TOWNS_KIND", "Road", "Building", "Rect", "Planner", "ObjectLayer"]


@dataclass(frozen=True)
class RoadKind:
    width_m: Tuple[float, float]  # carriageway
    surfaces: Tuple[Tuple[str, float], ...]
    rank: int  # drawing order: higher on top


ROAD_KINDS: Dict[str, RoadKind] = {
    "motorway": RoadKind((10.5, 12.0), (("asphalt_old", 0.5), ("asphalt_new", 0.2), ("concrete", 0.3)), 7),
    "primary": RoadKind((8.0, 11.0), (("asphalt_old", 0.7), ("asphalt_new", 0.3)), 6),
    "secondary": RoadKind((6.5, 8.5), (("asphalt_old", 0.75), ("asphalt_new", 0.25)), 5),
    "tertiary": RoadKind((5.5, 7.0), (("asphalt_old", 0.8), ("asphalt_new", 0.2)), 4),
    "residential": RoadKind((4.5, 6.5), (("asphalt_old", 0.6), ("asphalt_new", 0.15), ("paving", 0.25)), 3),
    "service": RoadKind((3.0, 4.5), (("asphalt_old", 0.4), ("paving", 0.3), ("gravel", 0.3)), 2),
    "track": RoadKind((2.8, 4.0), (("dirt_track", 0.6), ("gravel", 0.4)), 1),
}
#: OSM class -> the road kind names of the v1 towns (``core.data.synthetic.area.ROAD_CLASSES`` reads those).
TOWNS_KIND = {"motorway": "highway", "primary": "highway", "secondary": "main", "tertiary": "main",
              "residential": "street", "service": "alley", "track": "track"}

# roof material shares per building kind
_ROOFS = {
    "house": (("roof_red_tile", 0.34), ("roof_brown", 0.2), ("roof_graphite", 0.24), ("roof_asbestos", 0.08),
              ("roof_bitumen", 0.04), ("roof_metal", 0.04), ("roof_green", 0.03), ("roof_concrete", 0.03)),
    "barn": (("roof_asbestos", 0.3), ("roof_metal", 0.22), ("roof_red_tile", 0.14), ("roof_graphite", 0.14),
             ("roof_brown", 0.12), ("roof_green", 0.08)),
    "shed": (("roof_bitumen", 0.3), ("roof_metal", 0.22), ("roof_asbestos", 0.22), ("roof_graphite", 0.14),
             ("roof_brown", 0.12)),
    "block": (("roof_bitumen", 0.45), ("roof_concrete", 0.3), ("roof_white", 0.1), ("roof_graphite", 0.15)),
    "hall": (("roof_metal", 0.42), ("roof_white", 0.2), ("roof_concrete", 0.2), ("roof_graphite", 0.18)),
    "church": (("roof_red_tile", 0.4), ("roof_graphite", 0.3), ("roof_metal", 0.3)),
}
# (length m, width m, pitch deg, eave height m, share of L-shapes)
_SIZES = {
    "house": ((9.0, 15.0), (8.0, 11.0), (30.0, 45.0), (3.0, 6.5), 0.25),
    "barn": ((15.0, 40.0), (9.0, 15.0), (15.0, 30.0), (5.0, 8.0), 0.15),
    "shed": ((6.0, 12.0), (4.0, 7.0), (0.0, 20.0), (2.5, 4.0), 0.0),
    "block": ((30.0, 60.0), (11.0, 14.0), (0.0, 0.0), (12.0, 16.0), 0.15),
    "hall": ((30.0, 90.0), (20.0, 40.0), (0.0, 8.0), (7.0, 11.0), 0.1),
    "church": ((25.0, 40.0), (10.0, 14.0), (45.0, 50.0), (10.0, 14.0), 0.0),
}


def _choice(rng: np.random.Generator, table: Tuple[Tuple[str, float], ...]) -> str:
    names, p = zip(*table)
    p = np.asarray(p) / np.sum(p)
    return str(names[int(rng.choice(len(names), p=p))])


@dataclass
class Road:
    """A road (or railway) centreline with its carriageway width (px) and surface."""

    points: np.ndarray  # [K, 2] (y, x), about 2 px apart
    width: float
    kind: str  # OSM highway class, or "rail"
    surface: str
    clearing: float = 0.0  # px kept free of tree crowns beyond the edge (forest roads, railways)
    verge: float = 0.0  # px of grass verge each side
    box: Optional[Tuple[slice, slice]] = None
    dist: Optional[np.ndarray] = None  # distance to the centreline inside ``box``
    along: Optional[np.ndarray] = None


@dataclass
class Rect:
    """A rotated rectangle (yard, square, garden plot): centre, half sizes (px), angle, surface."""

    cy: float
    cx: float
    half_l: float
    half_w: float
    angle: float
    surface: str = "paving"


@dataclass
class Building:
    """A building: one or two rotated rectangles (L-shape), with roof material, pitch and eave height."""

    parts: List[Rect]
    roof: str
    pitch: float  # degrees (0 = flat)
    eave_m: float
    kind: str


@dataclass
class ObjectLayer:
    """Everything man-made drawn on the HR grid (premultiplied colour, coverage, heights, roof normals)."""

    color: np.ndarray  # [4, H, W] premultiplied by alpha
    alpha: np.ndarray  # [H, W]
    height: np.ndarray  # [H, W] m above ground
    normal: np.ndarray  # [3, H, W] (east, north, up) of roofs; (0, 0, 1) elsewhere
    cover: np.ndarray  # [H, W] COVER code of objects (0 = none)
    roads: np.ndarray  # bool mask
    buildings: np.ndarray  # bool mask


class Planner:
    """Plans objects one by one, each accepted only if the object-free share stays above ``min_free``."""

    def __init__(self, n: int, rng: np.random.Generator, pixel_m: float, margin: float, min_free: float,
                 blocked: np.ndarray) -> None:
        self.n, self.rng, self.px, self.margin = n, rng, pixel_m, margin
        self.max_near = int(math.floor((1.0 - min_free) * n * n))
        self.near = np.zeros((n, n), bool)
        self.near_count = 0
        self.blocked = blocked.copy()  # no building here (water)
        self.occupied = blocked.copy()  # no building here (water, roads, other buildings + 1 px)
        self.roads_mask = np.zeros((n, n), bool)
        self.rail_mask = np.zeros((n, n), bool)
        self.road_edge = np.full((n, n), np.inf, np.float32)  # distance to the nearest carriageway edge
        self.roads: List[Road] = []
        self.rails: List[Road] = []
        self.buildings: List[Building] = []
        self.yards: List[Rect] = []
        self.plots: List[Rect] = []
        self.town_zones: List[Tuple[float, float, float]] = []
        self.crowns = Crowns()
        self.yy, self.xx = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
        self.settlements: List[Dict[str, object]] = []

    # ------------------------------------------------------------ budget
    def _fits(self, box: Tuple[slice, slice], add: np.ndarray) -> Tuple[bool, int]:
        gain = int((add & ~self.near[box]).sum())
        return self.near_count + gain <= self.max_near, gain

    def road(self, pts: np.ndarray, kind: str, width_m: Optional[float] = None, surface: Optional[str] = None,
             clearing: float = 0.0, verge: float = 0.0, rail: bool = False) -> Optional[Road]:
        """Add a road (or railway) along ``pts``; None when it would break the object-free budget."""
        n, rng = self.n, self.rng
        if len(pts) < 2:
            return None
        spec = ROAD_KINDS.get(kind)
        width_m = width_m if width_m is not None else rng.uniform(*spec.width_m)
        surface = surface or _choice(rng, spec.surfaces)
        w = width_m / self.px
        coarse = resample(pts, 3.0)
        reach = w / 2 + (0.0 if rail else self.margin) + 1.0
        dist, along, _ = polyline_field(coarse, reach, (n, n))
        finite = np.isfinite(dist)
        if not finite.any():
            return None
        rows, cols = np.flatnonzero(finite.any(1)), np.flatnonzero(finite.any(0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        d = dist[box]
        if not rail:
            ok, gain = self._fits(box, d <= w / 2 + self.margin)
            if not ok:
                return None
            self.near[box] |= d <= w / 2 + self.margin
            self.near_count += gain
            self.roads_mask[box] |= d <= w / 2
        else:
            self.rail_mask[box] |= d <= w / 2
        self.occupied[box] |= d <= w / 2 + 0.5
        np.minimum(self.road_edge[box], d - w / 2, out=self.road_edge[box])
        road = Road(coarse, w, "rail" if rail else kind, surface, clearing, verge, box, d, along[box])
        (self.rails if rail else self.roads).append(road)
        return road

    def building(self, b: Building) -> bool:
        """Add a building if its footprint (+1 px) is free and the budget allows; False otherwise."""
        n = self.n
        ext = max(max(p.half_l, p.half_w) for p in b.parts) * 1.5 + self.margin + 2
        cy = float(np.mean([p.cy for p in b.parts]))
        cx = float(np.mean([p.cx for p in b.parts]))
        r0, r1 = max(int(cy - ext - 6), 0), min(int(cy + ext + 6) + 1, n)
        c0, c1 = max(int(cx - ext - 6), 0), min(int(cx + ext + 6) + 1, n)
        if r0 >= r1 or c0 >= c1:
            return False
        box = (slice(r0, r1), slice(c0, c1))
        sdf = _building_sdf(self.yy[box], self.xx[box], b)
        foot = sdf <= 0.0
        if not foot.any() or (self.occupied[box] & (sdf <= 0.5)).any():
            return False
        ok, gain = self._fits(box, sdf <= self.margin)
        if not ok:
            return False
        self.near[box] |= sdf <= self.margin
        self.near_count += gain
        self.occupied[box] |= sdf <= 1.0
        self.buildings.append(b)
        return True

    # ------------------------------------------------------------ helpers for settlements
    def new_building(self, kind: str, cy: float, cx: float, angle: float, size_scale: float = 1.0) -> Building:
        rng = self.rng
        (l0, l1), (w0, w1), (p0, p1), (e0, e1), l_share = _SIZES[kind]
        length = rng.uniform(l0, l1) * size_scale / self.px
        width = min(rng.uniform(w0, w1) * size_scale / self.px, length)
        parts = [Rect(cy, cx, length / 2, width / 2, angle)]
        if rng.random() < l_share:  # an L-shape: a wing at one end, at right angles
            wl = rng.uniform(0.5, 0.9) * length
            ww = rng.uniform(0.6, 1.0) * width
            end = rng.choice([-1, 1])
            sidev = rng.choice([-1, 1])
            ca, sa = math.cos(angle), math.sin(angle)
            # wing centre: at the end of the main block, sticking out sideways
            u_off = end * (length / 2 - ww / 2)
            v_off = sidev * (width / 2 + wl / 2 - 0.5)
            wy = cy + u_off * sa + v_off * ca
            wx = cx + u_off * ca - v_off * sa
            parts.append(Rect(wy, wx, wl / 2, ww / 2, angle + math.pi / 2))
        return Building(parts, _choice(rng, _ROOFS[kind]), rng.uniform(p0, p1), rng.uniform(e0, e1), kind)

    def trees_at(self, y: np.ndarray, x: np.ndarray, cls: int, height: Tuple[float, float]) -> None:
        y, x = np.asarray(y, np.float32), np.asarray(x, np.float32)
        inside = (y >= 0) & (y < self.n) & (x >= 0) & (x < self.n)
        y, x = y[inside], x[inside]
        if y.size:
            self.crowns.add(y, x, cls, self.rng.uniform(*height, y.size), 0)

    def road_points_in_scene(self, road: Road) -> np.ndarray:
        p = road.points
        inside = (p[:, 0] >= 0) & (p[:, 0] < self.n) & (p[:, 1] >= 0) & (p[:, 1] < self.n)
        return np.flatnonzero(inside)

    # ------------------------------------------------------------ drawing
    def draw(self, rng: np.random.Generator) -> ObjectLayer:
        """Rasterise all accepted objects (see :class:`ObjectLayer`)."""
        n = self.n
        color = np.zeros((4, n, n), np.float32)
        alpha = np.zeros((n, n), np.float32)
        height = np.zeros((n, n), np.float32)
        normal = np.zeros((3, n, n), np.float32)
        normal[2] = 1.0
        cover = np.zeros((n, n), np.int16)
        grass = sample("grass_green", 1, rng)[0]

        def over(box: Tuple[slice, slice], a: np.ndarray, col: np.ndarray, code: int) -> None:
            a = a.astype(np.float32)
            color[(slice(None),) + box] = col * a + color[(slice(None),) + box] * (1 - a)
            alpha[box] = a + alpha[box] * (1 - a)
            cover[box] = np.where(a >= 0.5, code, cover[box])

        for rail in self.rails:
            d = rail.dist
            a = np.clip(rail.width / 2 - d + 0.5, 0, 1)
            col = sample("ballast", 1, rng)[0][:, None, None] * np.ones_like(d)[None]
            offs = (-0.75, 0.75) if rail.width > 2.5 else (0.0,)
            for o in offs:  # steel rails and sleepers darken the track centre lines a little
                col = col * (1 - 0.18 * np.exp(-((d - abs(o)) / 0.45) ** 2))[None]
            over(rail.box, a, col, COVER["railway"])
        for road in sorted(self.roads, key=lambda r: ROAD_KINDS[r.kind].rank):
            d, al = road.dist, road.along
            a = np.clip(road.width / 2 - d + 0.5, 0, 1)
            base = sample(road.surface, 1, rng)[0]
            if road.kind == "track":  # wheel ruts with grass between them
                base = 0.85 * base + 0.15 * grass
            patches = noise_1d(int(al.max()) + 16, rng.uniform(3, 12), rng)
            mod = 1 + 0.045 * patches[np.clip(al.astype(np.int64), 0, patches.size - 1)]
            mod = mod * (1 + 0.012 * rng.standard_normal(d.shape))
            over(road.box, a, base[:, None, None] * mod[None], COVER["road"])
        for yard in self.yards:
            box, sdf, _u, _v = self.rect_box(yard, 1.0)
            if box is None:
                continue
            a = np.clip(0.5 - sdf, 0, 1)
            base = sample(yard.surface, 1, rng)[0]
            mod = 1 + 0.04 * rng.standard_normal(sdf.shape) * 0.5
            over(box, a, base[:, None, None] * mod[None], COVER["paved"])
        for b in self.buildings:
            self._draw_building(b, rng, over, height, normal)
        return ObjectLayer(color, alpha, height, normal, cover, self.roads_mask.copy(), self._buildings_mask())

    def rect_box(self, r: Rect, pad: float):
        n = self.n
        ext = math.hypot(r.half_l, r.half_w) + pad + 1
        r0, r1 = max(int(r.cy - ext), 0), min(int(r.cy + ext) + 1, n)
        c0, c1 = max(int(r.cx - ext), 0), min(int(r.cx + ext) + 1, n)
        if r0 >= r1 or c0 >= c1:
            return None, None, None, None
        box = (slice(r0, r1), slice(c0, c1))
        sdf, u, v = rect_sdf(self.yy[box], self.xx[box], r.cy, r.cx, r.half_l, r.half_w, r.angle)
        return box, sdf, u, v

    def _buildings_mask(self) -> np.ndarray:
        mask = np.zeros((self.n, self.n), bool)
        for b in self.buildings:
            for p in b.parts:
                box, sdf, _u, _v = self.rect_box(p, 0.0)
                if box is not None:
                    mask[box] |= sdf <= 0.0
        return mask

    def _draw_building(self, b: Building, rng: np.random.Generator, over, height: np.ndarray, normal: np.ndarray) -> None:
        roof = sample(b.roof, 1, rng)[0]
        pitch = math.radians(b.pitch)
        for i, p in enumerate(b.parts):
            box, sdf, u, v = self.rect_box(p, 1.0)
            if box is None:
                continue
            if i > 0:  # the wing does not cover the main block (the main block keeps its ridge)
                main = b.parts[0]
                msdf, _mu, _mv = rect_sdf(self.yy[box], self.xx[box], main.cy, main.cx, main.half_l, main.half_w, main.angle)
                sdf = np.maximum(sdf, -msdf)
            a = np.clip(0.5 - sdf, 0, 1)
            if not (a > 0).any():
                continue
            mod = 1 + 0.025 * rng.standard_normal(sdf.shape)
            over(box, a, roof[:, None, None] * mod[None], COVER["building"])
            inside = a > 0
            # roof planes: ridge along u; each half tilts towards its own side (v > 0 or v < 0)
            side = np.where(v >= 0, 1.0, -1.0)
            ca, sa = math.cos(p.angle), math.sin(p.angle)
            ve, vn = -sa, -ca  # the +v axis in (east, north)
            ne = side * math.sin(pitch) * ve
            nn = side * math.sin(pitch) * vn
            nz = math.cos(pitch)
            for k, comp in enumerate((ne, nn, nz)):
                normal[k][box] = np.where(inside, comp, normal[k][box])
            rise = np.clip(p.half_w - np.abs(v), 0, None) * self.px * math.tan(pitch)
            h = (b.eave_m + rise) * a
            height[box] = np.maximum(height[box], h)

    # ------------------------------------------------------------ output for scene.extra
    def road_segments(self) -> List[Dict[str, float]]:
        """Mapped roads as segments (HR px, pixel centres at +0.5), for vector exports (see area.py)."""
        out = []
        for road in self.roads:
            p = road.points
            for (y0, x0), (y1, x1) in zip(p[:-1], p[1:]):
                out.append(dict(y0=float(y0), x0=float(x0), y1=float(y1), x1=float(x1), width=float(road.width),
                                kind=TOWNS_KIND.get(road.kind, "street"), highway=road.kind))
        return out

    def building_list(self) -> List[Dict[str, object]]:
        return [dict(kind=b.kind, roof=b.roof, pitch=round(b.pitch, 1), eave_m=round(b.eave_m, 1),
                     parts=[dict(cy=p.cy, cx=p.cx, half_l=p.half_l, half_w=p.half_w, angle=p.angle) for p in b.parts])
                for b in self.buildings]


def _building_sdf(yy: np.ndarray, xx: np.ndarray, b: Building) -> np.ndarray:
    sdf = None
    for p in b.parts:
        s, _u, _v = rect_sdf(yy, xx, p.cy, p.cx, p.half_l, p.half_w, p.angle)
        sdf = s if sdf is None else np.minimum(sdf, s)
    return sdf
