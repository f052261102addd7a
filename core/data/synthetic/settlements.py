"""Roads, railways and settlements of world v2, with OSM-like masks and a budget of object-free land.

Why: real rural scenes hold a few settlements of several kinds (farmsteads,
hamlets, linear villages whose houses line a road with long garden plots
behind them, now and then a small town with curving streets) tied together
by a hierarchy of curved roads, and crossed by farm and forest tracks that
OSM maps as ``highway=track``. Most of the land is far from any of them.

Mask semantics (OpenStreetMap, as rasterised by :mod:`core.data.vectors`):

* ``buildings``: the footprint of every building (pixel centre inside);
* ``roads``: the carriageway of every mapped highway, a pixel whose centre
  lies within half the carriageway width of the centreline. Unpaved farm and
  forest tracks *are* roads (OSM ``highway=track``, 3-4 m); grass balks and
  field margins are not; railways are not (OSM ``railway=rail``); nor are
  paved yards, squares and parking lots, which OSM maps as areas, not highways.

Every object is planned first and drawn later. While planning,
:class:`Planner` keeps the set of pixels within ``margin`` px of any building
or road and refuses an object that would leave less than ``min_free`` of the
scene object-free, so the rule holds by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from .canopy import Crowns
from .geometry import noise_1d, polyline_field, rect_sdf, smooth_curve
from .land import COVER, FOREST_COVERS, Units
from .phenology import CALENDAR_IDS
from .spectra import sample
from .terrain import Curve, make_curve
from .towns import fractal_noise

__all__ = ["ROAD_KINDS", "Road", "Building", "Rect", "Planner", "ObjectLayer", "TOWNS_KIND"]


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
        coarse = _resample(pts, 3.0)
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
                base = 0.78 * base + 0.22 * grass
            patches = noise_1d(int(al.max()) + 16, rng.uniform(3, 12), rng)
            mod = 1 + 0.045 * patches[np.clip(al.astype(np.int64), 0, patches.size - 1)]
            mod = mod * (1 + 0.012 * rng.standard_normal(d.shape))
            over(road.box, a, base[:, None, None] * mod[None], COVER["road"])
        for yard in self.yards:
            box, sdf, _u, _v = self._rect_box(yard, 1.0)
            if box is None:
                continue
            a = np.clip(0.5 - sdf, 0, 1)
            base = sample(yard.surface, 1, rng)[0]
            mod = 1 + 0.04 * rng.standard_normal(sdf.shape) * 0.5
            over(box, a, base[:, None, None] * mod[None], COVER["paved"])
        for b in self.buildings:
            self._draw_building(b, rng, over, height, normal)
        return ObjectLayer(color, alpha, height, normal, cover, self.roads_mask.copy(), self._buildings_mask())

    def _rect_box(self, r: Rect, pad: float):
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
                box, sdf, _u, _v = self._rect_box(p, 0.0)
                if box is not None:
                    mask[box] |= sdf <= 0.0
        return mask

    def _draw_building(self, b: Building, rng: np.random.Generator, over, height: np.ndarray, normal: np.ndarray) -> None:
        roof = sample(b.roof, 1, rng)[0]
        pitch = math.radians(b.pitch)
        for i, p in enumerate(b.parts):
            box, sdf, u, v = self._rect_box(p, 1.0)
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


def _resample(pts: np.ndarray, step: float) -> np.ndarray:
    """Points about ``step`` px apart along a polyline (first and last kept)."""
    pts = np.asarray(pts, np.float64)
    seg = np.hypot(*(pts[1:] - pts[:-1]).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] <= step:
        return pts[[0, -1]]
    t = np.linspace(0.0, cum[-1], int(math.ceil(cum[-1] / step)) + 1)
    return np.stack([np.interp(t, cum, pts[:, 0]), np.interp(t, cum, pts[:, 1])], 1)


def _building_sdf(yy: np.ndarray, xx: np.ndarray, b: Building) -> np.ndarray:
    sdf = None
    for p in b.parts:
        s, _u, _v = rect_sdf(yy, xx, p.cy, p.cx, p.half_l, p.half_w, p.angle)
        sdf = s if sdf is None else np.minimum(sdf, s)
    return sdf


def _tangents(pts: np.ndarray) -> np.ndarray:
    t = np.gradient(pts, axis=0)
    return t / np.maximum(np.hypot(t[:, 0], t[:, 1])[:, None], 1e-9)


# ---------------------------------------------------------------------- network and settlements
def through_curves(n: int, rng: np.random.Generator, count: int, lake: np.ndarray) -> List[Tuple[Curve, str]]:
    """Curves of the through roads (and their class), avoiding lakes; they cut the parcel mosaic."""
    out: List[Tuple[Curve, str]] = []
    for _ in range(count):
        for _try in range(6):
            curve = make_curve(n, rng, wiggle=rng.uniform(6, 30), spacing=(90.0, 220.0))
            p = curve.points
            inside = (p[:, 0] >= 0) & (p[:, 0] < n) & (p[:, 1] >= 0) & (p[:, 1] < n)
            pi = p[inside].astype(np.int64)
            if pi.size and not lake[pi[:, 0], pi[:, 1]].any():
                kind = str(rng.choice(["primary", "secondary", "tertiary"], p=[0.3, 0.35, 0.35]))
                out.append((curve, kind))
                break
    return out


def houses_along(plan: Planner, road: Road, i0: int, i1: int, rng: np.random.Generator, spacing_m: Tuple[float, float],
                 setback_m: Tuple[float, float], plot_m: Tuple[float, float], farm: float, sides=(-1, 1),
                 kinds=("house",), max_houses: int = 10_000) -> int:
    """Houses (and outbuildings, gardens with trees) on both sides of ``road`` between point indices i0..i1."""
    pts = road.points
    tang = _tangents(pts)
    seg = np.hypot(*(pts[1:] - pts[:-1]).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    placed = 0
    # slots walk along the road; each side of a slot gets a house with some probability, so the two
    # sides fill up together and a village has its gaps
    slots = []
    pos = cum[i0] + rng.uniform(0, 10) / plan.px
    while pos < cum[i1]:
        step = rng.uniform(*spacing_m) / plan.px
        slots += [(pos + rng.normal(0, 0.15) * step, step, side) for side in sides if rng.random() < 0.85]
        pos += step
    for s, step, side in slots:
        if placed >= max_houses:
            break
        k = int(np.searchsorted(cum, s))
        k = min(max(k, 0), len(pts) - 1)
        p, t = pts[k], tang[k]
        nrm = np.array([t[1], -t[0]]) * side  # (y, x) normal
        along_angle = math.atan2(t[0], t[1])
        kind = str(rng.choice(kinds))
        gable = rng.random() < 0.4
        angle = along_angle + (math.pi / 2 if gable else 0.0) + rng.normal(0, 0.04)
        b = plan.new_building(kind, 0, 0, angle)
        depth = b.parts[0].half_l if gable else b.parts[0].half_w
        off = road.width / 2 + rng.uniform(*setback_m) / plan.px + depth
        c = p + nrm * off
        b = _moved(b, c[0], c[1])
        if plan.building(b):
            placed += 1
            plot_depth = rng.uniform(*plot_m) / plan.px
            pc = p + nrm * (road.width / 2 + 0.8 + plot_depth / 2)
            plan.plots.append(Rect(pc[0], pc[1], step / 2 * 0.97, plot_depth / 2, along_angle))
            back = off + depth
            if rng.random() < farm:  # a barn or shed behind the house, and a yard between
                ob_kind = "barn" if rng.random() < 0.6 else "shed"
                ob = plan.new_building(ob_kind, 0, 0, along_angle + (math.pi / 2 if rng.random() < 0.5 else 0.0))
                gap = rng.uniform(5, 14) / plan.px
                ob_depth = min(ob.parts[0].half_l, ob.parts[0].half_w)
                oc = p + nrm * (back + gap + ob_depth + 1.0)
                if plan.building(_moved(ob, oc[0], oc[1])):
                    yc = p + nrm * (back + gap / 2 + 0.5)
                    plan.yards.append(Rect(yc[0], yc[1], rng.uniform(5, 9) / plan.px, gap / 2 + 0.5, along_angle,
                                           str(rng.choice(["paving", "gravel", "dirt_track"]))))
            # garden and orchard trees behind
            k_trees = int(rng.integers(0, 5))
            if k_trees:
                dd = rng.uniform(back + 2.0, max(back + 3.0, road.width / 2 + plot_depth), k_trees)
                ll = rng.uniform(-step / 2, step / 2, k_trees)
                ty = p[0] + nrm[0] * dd + t[0] * ll
                tx = p[1] + nrm[1] * dd + t[1] * ll
                plan.trees_at(ty, tx, int(rng.choice([1, 2])), (4.0, 12.0))
    return placed


def _moved(b: Building, cy: float, cx: float) -> Building:
    """``b`` translated so that its main part is centred at (cy, cx)."""
    dy, dx = cy - b.parts[0].cy, cx - b.parts[0].cx
    parts = [Rect(p.cy + dy, p.cx + dx, p.half_l, p.half_w, p.angle, p.surface) for p in b.parts]
    return Building(parts, b.roof, b.pitch, b.eave_m, b.kind)


def village(plan: Planner, road: Road, rng: np.random.Generator, linear: bool = True) -> None:
    """A linear village: houses along a stretch of ``road``, farm buildings and long plots behind."""
    idx = plan.road_points_in_scene(road)
    if idx.size < 10:
        return
    length = int(rng.uniform(150, 650) / plan.px / 3.0)  # road points are ~3 px apart
    mid = int(rng.choice(idx))
    i0, i1 = max(mid - length // 2, int(idx[0])), min(mid + length // 2, int(idx[-1]))
    if i1 - i0 < 5:
        return
    placed = houses_along(plan, road, i0, i1, rng, (16, 34), (3, 12), (40, 140) if linear else (25, 60), farm=0.55,
                          kinds=("house",))
    if not placed:
        return
    c = road.points[(i0 + i1) // 2]
    plan.settlements.append(dict(kind="village", cy=float(c[0]), cx=float(c[1]), houses=placed))
    # a side street or two
    for _ in range(int(rng.integers(0, 3))):
        j = int(rng.integers(i0, i1 + 1))
        street = _branch(plan, road, j, rng, rng.uniform(120, 350) / plan.px)
        if street is not None:
            r = plan.road(street, "residential")
            if r is not None:
                houses_along(plan, r, 2, len(r.points) - 1, rng, (16, 30), (3, 10), (25, 60), farm=0.3)
    if rng.random() < 0.35:  # an alley of trees along the village road
        _alley(plan, road, i0, i1, rng)


def _branch(plan: Planner, road: Road, j: int, rng: np.random.Generator, length: float) -> Optional[np.ndarray]:
    """A curving street leaving ``road`` at point ``j`` at roughly right angles."""
    pts = road.points
    t = _tangents(pts)[j]
    side = rng.choice([-1, 1])
    nrm = np.array([t[1], -t[0]]) * side
    ang = math.atan2(nrm[0], nrm[1]) + rng.normal(0, 0.3)
    way = [pts[j]]
    pos = pts[j].astype(np.float64)
    for _k in range(3):
        ang += rng.normal(0, 0.25)
        pos = pos + (length / 3) * np.array([math.sin(ang), math.cos(ang)])
        way.append(pos.copy())
    return smooth_curve(np.asarray(way), 2.0)


def _alley(plan: Planner, road: Road, i0: int, i1: int, rng: np.random.Generator) -> None:
    pts = road.points[i0:i1 + 1]
    if len(pts) < 3:
        return
    dense = _resample(pts, rng.uniform(8, 12) / plan.px)
    t = _tangents(dense)
    for side in (-1, 1):
        nrm = np.stack([t[:, 1], -t[:, 0]], 1) * side
        off = road.width / 2 + rng.uniform(1.0, 2.2)
        q = dense + nrm * off
        keep = rng.random(len(q)) < 0.85
        plan.trees_at(q[keep, 0], q[keep, 1], 2, (10.0, 20.0))


def farmstead(plan: Planner, rng: np.random.Generator, where: np.ndarray, theta: np.ndarray) -> None:
    """A farmstead: a yard with a house, a barn and sheds around it, shelter trees, and a track to a road."""
    n = plan.n
    ys, xs = np.nonzero(where & ~plan.near & ~plan.occupied)
    if ys.size == 0:
        return
    k = int(rng.integers(ys.size))
    cy, cx = ys[k] + 0.5, xs[k] + 0.5
    ang = float(theta[ys[k], xs[k]]) + rng.normal(0, 0.05)
    yard = Rect(cy, cx, rng.uniform(10, 22) / plan.px, rng.uniform(8, 18) / plan.px, ang,
                str(rng.choice(["dirt_track", "gravel", "paving", "concrete"], p=[0.35, 0.3, 0.2, 0.15])))
    ca, sa = math.cos(ang), math.sin(ang)

    def at(u: float, v: float) -> Tuple[float, float]:
        return cy + u * sa + v * ca, cx + u * ca - v * sa

    # road access first: without it the farmstead is not built
    roads = plan.roads
    if roads:
        allp = np.concatenate([r.points for r in roads])
        dd = np.hypot(allp[:, 0] - cy, allp[:, 1] - cx)
        j = int(np.argmin(dd))
        target = allp[j]
        if dd[j] > 0.6 * n:
            target = None
    else:
        target = None
    if target is None:  # towards the nearest scene edge
        edges = [(cy, -10.0), (cy, n + 10.0), (-10.0, cx), (n + 10.0, cx)]
        target = np.asarray(min(edges, key=lambda e: math.hypot(e[0] - cy, e[1] - cx)))
    mid = (np.array([cy, cx]) + target) / 2 + rng.normal(0, 6, 2)
    track = smooth_curve(np.array([[cy, cx], mid, target]), 2.0)
    if plan.road(track, "track") is None:
        return
    placed = 0
    slots = [("house", 0.0, yard.half_w + 0.5), ("barn", 0.0, -yard.half_w - 0.5), ("shed", yard.half_l + 0.5, 0.0),
             ("barn", -yard.half_l - 0.5, 0.0)]
    for kind, u, v in slots[: int(rng.integers(1, 5))]:
        b = plan.new_building(kind, 0, 0, ang + (math.pi / 2 if u != 0 else 0.0))
        depth = b.parts[0].half_w
        vv = v + np.sign(v) * depth if v else 0.0
        uu = u + np.sign(u) * depth if u else 0.0
        y, x = at(uu, vv)
        placed += plan.building(_moved(b, y, x))
    if placed:
        plan.yards.append(yard)
        # shelter trees along one or two sides, an orchard plot
        for _ in range(int(rng.integers(1, 3))):
            side = rng.choice([-1, 1])
            uu = np.linspace(-yard.half_l - 6, yard.half_l + 6, int(rng.integers(5, 12)))
            vv = side * (yard.half_w + rng.uniform(7, 12)) + rng.normal(0, 0.6, uu.size)
            plan.trees_at(cy + uu * sa + vv * ca, cx + uu * ca - vv * sa, int(rng.choice([1, 2, 3])), (6.0, 18.0))
        py, px_ = at(0.0, (yard.half_w + 12) * rng.choice([-1, 1]))
        plan.plots.append(Rect(py, px_, yard.half_l + 8, 10.0, ang))
        plan.settlements.append(dict(kind="farmstead", cy=float(cy), cx=float(cx), houses=int(placed)))


def town(plan: Planner, rng: np.random.Generator, centre: np.ndarray) -> None:
    """A small town with an organic street plan: a market square, curving streets leaving it, partial
    rings and side streets, terraced houses in the core, detached houses outwards, blocks and halls."""
    r_px = rng.uniform(160, 330) / plan.px
    cy, cx = float(centre[0]), float(centre[1])
    sq = Rect(cy, cx, rng.uniform(20, 40) / plan.px, rng.uniform(15, 30) / plan.px, rng.uniform(0, np.pi), "paving")
    streets: List[Road] = []
    k = int(rng.integers(4, 8))
    base = rng.uniform(0, 2 * np.pi)
    for i in range(k):  # streets leave the square's sides and curve outwards
        ang = base + 2 * np.pi * i / k + rng.normal(0, 0.2)
        pos = np.array([cy, cx]) + 1.1 * max(sq.half_l, sq.half_w) * np.array([math.sin(ang), math.cos(ang)])
        way = [pos.copy()]
        for _s in range(4):
            ang += rng.normal(0, 0.18)
            pos = pos + r_px * rng.uniform(1.0, 1.5) / 4 * np.array([math.sin(ang), math.cos(ang)])
            way.append(pos.copy())
        r = plan.road(smooth_curve(np.asarray(way), 2.0), "residential" if i % 2 else "tertiary")
        if r is not None:
            streets.append(r)
    for _ring in range(int(rng.integers(1, 3))):
        rr = r_px * rng.uniform(0.35, 0.8)
        aa = rng.uniform(0, 2 * np.pi) + np.linspace(0, rng.uniform(2.0, 5.5), 9)
        rad = rr * (1 + 0.08 * rng.standard_normal(aa.size))
        r = plan.road(smooth_curve(np.stack([cy + rad * np.sin(aa), cx + rad * np.cos(aa)], 1), 2.0), "residential")
        if r is not None:
            streets.append(r)
    for r in list(streets):  # side streets
        idx = plan.road_points_in_scene(r)
        for _b in range(int(rng.integers(0, 3)) if idx.size > 10 else 0):
            side = _branch(plan, r, int(rng.choice(idx[len(idx) // 4:])), rng, rng.uniform(60, 160) / plan.px)
            if side is not None:
                sr = plan.road(side, "residential")
                if sr is not None:
                    streets.append(sr)
    plan.yards.append(sq)
    plan.occupied[_disk_box(plan, cy, cx, max(sq.half_l, sq.half_w) + 1)] |= True
    plan.town_zones.append((cy, cx, r_px))
    placed = 0
    # the core first: tight rows of larger houses on the square and the first stretch of each street
    for r in streets:
        idx = plan.road_points_in_scene(r)
        if idx.size < 4:
            continue
        dist_c = np.hypot(r.points[idx, 0] - cy, r.points[idx, 1] - cx)
        core = idx[dist_c < 0.35 * r_px]
        if core.size >= 3:
            placed += houses_along(plan, r, int(core[0]), int(core[-1]), rng, (10, 15), (0.5, 2), (15, 30), farm=0.1)
    for r in streets:
        idx = plan.road_points_in_scene(r)
        if idx.size < 4:
            continue
        placed += houses_along(plan, r, int(idx[0]), int(idx[-1]), rng, (13, 24), (2, 7), (20, 45), farm=0.15)
        if rng.random() < 0.3:
            _alley(plan, r, int(idx[0]), int(idx[-1]), rng)
    # blocks of flats and halls fill spare land; a church near the square
    for kind, tries in (("church", 1), ("block", int(rng.integers(2, 10))), ("hall", int(rng.integers(0, 4)))):
        for _ in range(tries * 4):
            rad = r_px * (rng.uniform(0.1, 0.3) if kind == "church" else rng.uniform(0.25, 0.9) if kind == "block"
                          else rng.uniform(0.7, 1.1))
            a = rng.uniform(0, 2 * np.pi)
            b = plan.new_building(kind, cy + rad * math.sin(a), cx + rad * math.cos(a), rng.uniform(0, np.pi))
            if plan.building(b):
                placed += 1
                tries -= 1
                if tries <= 0:
                    break
    # trees of gardens, yards and parks
    m = int(0.006 * math.pi * r_px * r_px)
    ang, rad = rng.uniform(0, 2 * np.pi, m), r_px * np.sqrt(rng.random(m))
    plan.trees_at(cy + rad * np.sin(ang), cx + rad * np.cos(ang), 2, (6.0, 18.0))
    plan.settlements.append(dict(kind="town", cy=cy, cx=cx, radius_px=float(r_px), houses=int(placed)))


def _disk_box(plan: Planner, cy: float, cx: float, r: float) -> Tuple[slice, slice]:
    n = plan.n
    return (slice(max(int(cy - r), 0), max(min(int(cy + r) + 1, n), 0)),
            slice(max(int(cx - r), 0), max(min(int(cx + r) + 1, n), 0)))


def hamlet(plan: Planner, rng: np.random.Generator) -> None:
    """A handful of houses along a short local road leaving an existing road (or crossing the scene)."""
    if plan.roads:
        parent = plan.roads[int(rng.integers(len(plan.roads)))]
        idx = plan.road_points_in_scene(parent)
        if idx.size < 4:
            return
        pts = _branch(plan, parent, int(rng.choice(idx)), rng, rng.uniform(150, 450) / plan.px)
    else:
        pts = make_curve(plan.n, rng, wiggle=10, spacing=(80, 160)).points
    r = plan.road(pts, str(rng.choice(["residential", "service"], p=[0.7, 0.3])))
    if r is None:
        return
    idx = plan.road_points_in_scene(r)
    if idx.size < 4:
        return
    n_pts = idx.size
    i0 = int(idx[0]) + int(rng.integers(0, max(n_pts // 3, 1)))
    placed = houses_along(plan, r, i0, int(idx[-1]), rng, (22, 45), (4, 15), (30, 80), farm=0.5,
                          max_houses=int(rng.integers(3, 11)))
    if placed:
        plan.settlements.append(dict(kind="hamlet", cy=float(r.points[i0][0]), cx=float(r.points[i0][1]), houses=placed))


def field_tracks(plan: Planner, rng: np.random.Generator, cuts: List[np.ndarray], ok: np.ndarray, count: int) -> None:
    """Farm tracks along some of the long early parcel cuts (tracks follow field boundaries)."""
    order = rng.permutation(len(cuts))
    made = 0
    for i in order:
        if made >= count:
            break
        line = cuts[i]
        pi = line.astype(np.int64)
        if ok[pi[:, 0].clip(0, plan.n - 1), pi[:, 1].clip(0, plan.n - 1)].mean() < 0.85:
            continue
        # bin the (1-2 px wide) line into a smooth polyline
        t = np.cumsum(np.r_[0, np.hypot(*np.diff(line, axis=0).T)])
        bins = (t // 5).astype(np.int64)
        cnt = np.bincount(bins)
        keep = cnt > 0
        ys = np.bincount(bins, line[:, 0])[keep] / cnt[keep]
        xs = np.bincount(bins, line[:, 1])[keep] / cnt[keep]
        if len(ys) < 6:
            continue
        pts = smooth_curve(np.stack([ys, xs], 1)[::2], 2.0)
        if plan.road(pts, "track") is not None:
            made += 1


def forest_roads(plan: Planner, rng: np.random.Generator, forest: np.ndarray, count: int) -> None:
    """Tracks and gravel roads through forest, with a cleared corridor wider than the road."""
    n = plan.n
    for _ in range(count):
        for _try in range(4):
            curve = make_curve(n, rng, wiggle=rng.uniform(2, 20), spacing=(80, 200))
            p = curve.points
            inside = (p[:, 0] >= 0) & (p[:, 0] < n) & (p[:, 1] >= 0) & (p[:, 1] < n)
            pi = np.clip(p.astype(np.int64), 0, n - 1)
            inf = forest[pi[:, 0], pi[:, 1]] & inside
            if inf.sum() < 30:
                continue
            # the longest run through forest, extended a little into the open
            runs = np.flatnonzero(np.diff(np.r_[0, inf.astype(np.int8), 0]))
            starts, ends = runs[::2], runs[1::2]
            j = int(np.argmax(ends - starts))
            a, b = max(starts[j] - 15, 0), min(ends[j] + 15, len(p))
            kind = "track" if rng.random() < 0.7 else "service"
            surface = "dirt_track" if kind == "track" and rng.random() < 0.5 else "gravel"
            if plan.road(p[a:b], kind, surface=surface, clearing=rng.uniform(1.0, 3.0)) is not None:
                break


def apply_to_land(plan: Planner, units: Units, labels: np.ndarray, rng: np.random.Generator) -> None:
    """Gardens, town green and road verges replace the parcels under them.

    Gardens are a mosaic: every plot takes one of several garden kinds
    (lawn, lawn with beds, vegetable plot, rough grass), so a village is not
    one uniform green. A town's land follows its streets (about 25-45 m on
    either side, within a ragged radius), never a circle.
    """
    yy, xx = plan.yy, plan.xx
    kinds = 6
    ids = units.extend(kinds + 1)
    for j, uid in enumerate(ids[:kinds]):
        soil_share = (0.05, 0.12, 0.25, 0.45, 0.08, 0.18)[j]
        units.cover[uid] = COVER["garden"]
        units.calendar[uid] = CALENDAR_IDS["garden"] if j != 4 else CALENDAR_IDS["meadow"]
        units.spec[uid, 0] = sample("grass_green", 1, rng)[0]
        units.spec[uid, 1] = sample("hay", 1, rng)[0]
        units.amp[uid] = 1.0 - soil_share
        units.vig_amp[uid] = rng.uniform(0.15, 0.3)
        units.streak_amp[uid] = rng.uniform(0.0, 0.08)
        units.theta[uid] = rng.uniform(0, np.pi)
    verge = ids[kinds]
    units.calendar[verge] = CALENDAR_IDS["pasture"]  # verges: rough grass
    units.cover[verge] = COVER["grassland"]
    units.spec[verge, 0] = sample("grass_green", 1, rng)[0]
    units.spec[verge, 1] = sample("hay", 1, rng)[0]
    forest = np.isin(units.cover, FOREST_COVERS)
    n = plan.n
    for cy, cx, r in plan.town_zones:  # a town clears the land it stands on, forest included
        rough = 1.0 + 0.2 * fractal_noise((n, n), 3.0, rng)
        zone = (np.hypot(yy - cy, xx - cx) < r * 1.1 * rough) & (plan.road_edge < rng.uniform(25, 45) / plan.px)
        labels[zone] = ids[0]
    for p in plan.plots:
        box, sdf, _u, _v = plan._rect_box(p, 0.0)
        if box is None:
            continue
        lab = labels[box]
        lab[(sdf <= 0) & ~forest[lab]] = ids[int(rng.integers(kinds))]
    for road in plan.roads + plan.rails:
        if road.kind in ("motorway", "primary", "rail") or road.verge > 0:
            v = road.verge if road.verge > 0 else (4.0 if road.kind == "motorway" else 1.5)
            lab = labels[road.box]
            lab[(road.dist <= road.width / 2 + v) & ~forest[lab]] = verge
