"""Settlements and the road network of world v2: where villages, hamlets, towns and farmsteads go.

Why: real rural scenes hold a few settlements of several kinds (farmsteads,
hamlets, linear villages whose houses line a road with long garden plots
behind them, now and then a small town with curving streets) tied together
by a hierarchy of curved roads, and crossed by farm and forest tracks that
OSM maps as ``highway=track``. Most of the land is far from any of them.
Each generator proposes objects to a :class:`.objects.Planner`, which accepts
them only while the scene stays object-free enough (see :mod:`.objects`).
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

from .geometry import resample, smooth_curve, tangents
from .land import COVER, FOREST_COVERS, Units
from .objects import Building, Planner, Rect, Road
from .phenology import CALENDAR_IDS
from .spectra import sample
from .terrain import Curve, make_curve
from .towns import fractal_noise

__all__ = [
    "through_curves", "houses_along", "village", "hamlet", "farmstead", "town", "field_tracks", "forest_roads",
    "apply_to_land",
]


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
    tang = tangents(pts)
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
    t = tangents(pts)[j]
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
    dense = resample(pts, rng.uniform(8, 12) / plan.px)
    t = tangents(dense)
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
        box, sdf, _u, _v = plan.rect_box(p, 0.0)
        if box is None:
            continue
        lab = labels[box]
        lab[(sdf <= 0) & ~forest[lab]] = ids[int(rng.integers(kinds))]
    for road in plan.roads + plan.rails:
        if road.kind in ("motorway", "primary", "rail") or road.verge > 0:
            v = road.verge if road.verge > 0 else (4.0 if road.kind == "motorway" else 1.5)
            lab = labels[road.box]
            lab[(road.dist <= road.width / 2 + v) & ~forest[lab]] = verge
