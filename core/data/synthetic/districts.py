"""City types of world v3 made of lots and plots: industrial estates, desert and tropical quarters, villa suburbs.

Why apart from :mod:`.cities`: same grid tools, but here blocks are cut into
plots that each hold a hall, a house with its yard, or a villa with garden,
pool and wall; the villa suburb has no grid at all (curving streets and
cul-de-sacs).
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from .cities import Block, CityStyle, colours, free_at, open_block, put, split_length, street_grid
from .geometry import tangents
from .land import COVER
from .roofs import urban_sample
from .terrain import make_curve
from .urban import GROUND, STYLE, CityPlan, Warp

__all__ = ["industrial", "desert_city", "tropical_city", "villa_suburb", "courtyard_houses"]


def industrial(plan: CityPlan, st: CityStyle) -> None:
    """Warehouses and big flat roofs on paved yards, trucks, vacant plots and rail sidings."""
    rng = plan.rng
    warp = Warp.random(plan.n, rng, rng.uniform(0.0, 0.02))

    def street(i: int) -> Tuple[str, float, str]:
        return ("secondary", float(rng.uniform(9, 14)), st.main_road if rng.random() < 0.6 else "concrete_road")

    blocks, _lines = street_grid(plan, st, warp, (140, 300), street, (110, 240))
    # rail sidings along one grid direction, between blocks
    if rng.random() < 0.75 and blocks:
        b = blocks[int(rng.integers(len(blocks)))]
        for t in range(int(rng.integers(1, 4))):
            v = b.v0 + st.m(3 + 4.5 * t)
            plan.road(warp.line(-0.9 * plan.n, v, 0.9 * plan.n, v), "rail", 3.0, "ballast", rail=True)
    for b in blocks:
        if free_at(plan, warp, b):
            continue
        if rng.random() < 0.12:
            open_block(plan, st, warp, b, "vacant")
            continue
        y, x = warp(b.cu, b.cv)
        ang = float(warp.angle(b.cu, b.cv))
        plan.paint_rect(y, x, b.lu / 2 - 1, b.lv / 2 - 1, ang, "concrete_road" if rng.random() < 0.5 else "asphalt_aged")
        # one to three halls along the block, each with a loading yard and trucks in front
        cen, half = split_length(rng, b.lu - st.m(10), st.m((60.0, 220.0)))
        for c, hl in zip(cen, half):
            hl = hl - st.m(rng.uniform(4, 12))
            hw = b.lv / 2 * rng.uniform(0.45, 0.8)
            if hl < 5 or hw < 5:
                continue
            cu = b.u0 + st.m(5) + c
            cv = b.cv + rng.uniform(-1, 1) * (b.lv / 2 - hw - 2)
            low_pitch = rng.random() < 0.4
            put(plan, warp, cu, cv, hl, hw, 0.0, colours(plan, st, "warehouse", 1), rng.uniform(7, 15),
                rng.uniform(3, 8) if low_pitch else 0.0, STYLE["gable"] if low_pitch else STYLE["flat"])
            yy, xx = warp(cu, cv + hw + st.m(9))
            plan.paint_rect(yy, xx, hl * 0.8, st.m(5), ang, "asphalt_aged", cars=rng.uniform(0.1, 0.5))


def courtyard_houses(plan: CityPlan, st: CityStyle, warp: Warp, b: Block, frontage: Tuple[float, float], cls: str,
                      heights: Tuple[float, float], pitch: Tuple[float, float], style: int, fill: float) -> None:
    """Two rows of houses back to back, each covering the front ``fill`` of its lot (the rest is a yard)."""
    rng = plan.rng
    for side in (-1, 1):
        cen, half = split_length(rng, b.lu, st.m(frontage))
        keep = rng.random(cen.size) < 0.93
        cen, half = cen[keep], half[keep]
        k = cen.size
        if k == 0:
            continue
        depth = b.lv / 2 * rng.uniform(fill, min(fill + 0.3, 1.0), k)
        v = b.cv + side * (b.lv / 2 - depth / 2)
        gap = st.m(rng.uniform(0.0, 0.6, k))
        put(plan, warp, b.u0 + cen, v, np.maximum(half - gap, 0.8), depth / 2, 0.0,
            colours(plan, st, cls, k), rng.uniform(*heights, k), rng.uniform(*pitch, k), style)


def desert_city(plan: CityPlan, st: CityStyle) -> None:
    """A compact desert quarter: narrow (often unpaved) streets, flat light roofs over courtyard houses, few palms."""
    rng = plan.rng
    warp = Warp.random(plan.n, rng, rng.uniform(0.0, 0.025))

    def street(i: int) -> Tuple[str, float, str]:
        if i % 5 == 0:
            return "primary", float(rng.uniform(16, 26)), "asphalt_fresh"
        return "residential", float(rng.uniform(5, 9)), "dirt_road" if rng.random() < 0.5 else "asphalt_aged"

    blocks, _lines = street_grid(plan, st, warp, (45, 90), street, (35, 70), trees_every=1)
    for b in blocks:
        r = rng.random()
        if free_at(plan, warp, b):
            continue
        if r < 0.05:
            open_block(plan, st, warp, b, "vacant")
            continue
        if r < 0.08:
            open_block(plan, st, warp, b, "square")
            continue
        courtyard_houses(plan, st, warp, b, (9, 20), "desert", (3.5, 12.0), (0.0, 0.0), STYLE["flat"], 0.55)
        k = int(rng.poisson(1.0))
        yy, xx = warp(b.cu + rng.uniform(-0.4, 0.4, k) * b.lu, b.cv + rng.uniform(-0.15, 0.15, k) * b.lv)
        plan.trees(yy, xx, 1, (6.0, 12.0))


def tropical_city(plan: CityPlan, st: CityStyle) -> None:
    """Detached houses under red clay and sheet-metal roofs, dirt streets on a loose grid, dense trees."""
    rng = plan.rng
    warp = Warp.random(plan.n, rng, rng.uniform(0.01, 0.035))

    def street(i: int) -> Tuple[str, float, str]:
        if i % 4 == 0:
            return "secondary", float(rng.uniform(8, 12)), "asphalt_aged"
        return "residential", float(rng.uniform(4, 7)), "laterite_road"

    blocks, _lines = street_grid(plan, st, warp, (50, 100), street, (40, 80))
    for b in blocks:
        if free_at(plan, warp, b):
            continue
        if rng.random() < 0.07:
            open_block(plan, st, warp, b, "park")
            continue
        plan.ground_rect(*warp(b.cu, b.cv), b.lu / 2, b.lv / 2, float(warp.angle(b.cu, b.cv)), "lawn")
        courtyard_houses(plan, st, warp, b, (10, 22), "house", (3.0, 7.0), (15.0, 30.0),
                          STYLE["hip"] if rng.random() < 0.5 else STYLE["gable"], 0.35)
        k = int(b.lu * b.lv * rng.uniform(0.02, 0.06))
        yy, xx = warp(b.cu + rng.uniform(-0.5, 0.5, k) * b.lu, b.cv + rng.uniform(-0.5, 0.5, k) * b.lv)
        plan.trees(yy, xx, int(rng.integers(1, 4)), st.tree_height)


def villa_suburb(plan: CityPlan, st: CityStyle) -> None:
    """Detached houses on curving streets and cul-de-sacs: gardens, pools (more in warm climates), walls, trees."""
    rng, n = plan.rng, plan.n
    warm = st.climate != "temperate" or rng.random() < 0.3
    p_pool = rng.uniform(0.3, 0.7) if warm else rng.uniform(0.0, 0.12)
    p_wall = rng.uniform(0.4, 0.8) if st.climate == "desert" else rng.uniform(0.0, 0.15)
    plan.ground[~plan.free] = GROUND["lawn"]
    minor = st.minor_road if st.climate == "tropical" else st.main_road
    # collectors cross the scene; residential streets branch off them, curve, and end in a turning circle,
    # or meet another street (a loop); branches of branches make the dendritic plan of a suburb
    collectors = []
    for k in range(int(rng.integers(2, 4) * max(1.0, n / 384))):  # collectors about 400-600 m apart
        c = make_curve(n, rng, wiggle=rng.uniform(10, 40), spacing=(60.0, 140.0), axis=k % 2)
        r = plan.road(c.points, "secondary", rng.uniform(9, 11), st.main_road)
        if r is not None:
            collectors.append(r)
    parents = list(collectors)
    for depth in range(2):
        children = []
        for parent in parents:
            pts, tang = parent.points, tangents(parent.points)
            step = st.m(rng.uniform(80, 130)) / 3.0  # road points are ~3 px apart
            for j in np.arange(rng.uniform(0, step), len(pts) - 1, step).astype(int):
                if not (0 <= pts[j, 0] < n and 0 <= pts[j, 1] < n):
                    continue
                for side in (-1, 1):
                    if rng.random() < 0.4:
                        continue
                    ang = math.atan2(tang[j, 0], tang[j, 1]) + side * math.pi / 2
                    r = _branch(plan, st, pts[j], ang, st.m(rng.uniform(150, 350) / (1 + 0.5 * depth)), minor)
                    if r is not None:
                        children.append(r)
        parents = children
    for r in list(plan.planner.roads):
        _villas_along(plan, st, r, p_pool, p_wall)


def _branch(plan: CityPlan, st: CityStyle, start: np.ndarray, ang: float, length: float, surface: str):
    """A curving residential street from ``start``; cut short before it runs into another street."""
    rng, n = plan.rng, plan.n
    k = max(int(length / 2.0), 4)
    heading = ang + np.cumsum(rng.normal(0, 0.05, k)) + rng.normal(0, 0.2)
    pts = start + np.cumsum(2.0 * np.stack([np.sin(heading), np.cos(heading)], 1), 0)
    others = np.concatenate([r.points for r in plan.planner.roads]) if plan.planner.roads else np.zeros((1, 2)) - 1e6
    gap = np.full(len(pts), np.inf)
    for chunk in np.array_split(np.arange(len(others)), max(1, len(others) // 2000)):
        d = np.hypot(pts[:, None, 0] - others[None, chunk, 0], pts[:, None, 1] - others[None, chunk, 1])
        gap = np.minimum(gap, d.min(1))
    near = gap < st.m(30)
    near[: int(st.m(45) / 2.0)] = False  # the parent street itself
    hit = np.flatnonzero(near)
    loop = hit.size > 0 and rng.random() < 0.4
    if hit.size:
        pts = pts[: hit[0] + (int(st.m(30) / 2.0) + 2 if loop else -int(st.m(12) / 2.0))]
    if len(pts) < 6:
        return None
    pts = np.concatenate([start[None], pts])
    r = plan.road(pts, "residential", rng.uniform(6, 7.5), surface)
    end = pts[-1]
    if r is not None and not loop and 0 <= end[0] < n and 0 <= end[1] < n:
        # the turning circle: part of the street in OSM-based masks
        plan.planner.road(np.array([end, end + 0.5]), "residential", width_m=rng.uniform(16, 22), surface=surface)
    return r


def _villas_along(plan: CityPlan, st: CityStyle, road, p_pool: float, p_wall: float) -> None:
    rng = plan.rng
    pts = road.points
    seg = np.hypot(*(pts[1:] - pts[:-1]).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    tang = tangents(pts)
    frontage = st.m(rng.uniform(18, 32))
    for s in np.arange(rng.uniform(0, frontage), cum[-1], frontage):
        k = min(int(np.searchsorted(cum, s)), len(pts) - 1)
        p, t = pts[k], tang[k]
        along = math.atan2(t[0], t[1])
        for side in (-1, 1):
            nrm = np.array([t[1], -t[0]]) * side
            lot_d = st.m(rng.uniform(28, 45))
            hl, hw = st.m(rng.uniform(6, 11)), st.m(rng.uniform(4.5, 7))
            setback = road.width / 2 + st.m(rng.uniform(5, 9))
            c = p + nrm * (setback + hw)
            if not plan.claim(c[0], c[1], hl, hw, along, pad=st.m(2.0)):
                continue
            plan.buildings.add(c[0], c[1], hl, hw, along, colours(plan, st, "house", 1), rng.uniform(3, 7),
                               rng.uniform(20, 35), STYLE["hip"] if rng.random() < 0.6 else STYLE["gable"])
            lc = p + nrm * (road.width / 2 + st.m(1.0) + lot_d / 2)
            plan.ground_rect(lc[0], lc[1], frontage / 2 - 0.3, lot_d / 2, along, "lawn")
            d = p + nrm * (road.width / 2 + (setback - road.width / 2) / 2)  # driveway
            plan.paint_rect(d[0] + t[0] * hl * 0.6, d[1] + t[1] * hl * 0.6, st.m(1.6), (setback - road.width / 2) / 2,
                            along + math.pi / 2, "concrete_road")
            back = setback + 2 * hw
            if rng.random() < p_pool:
                pc = p + nrm * (back + st.m(rng.uniform(4, 8))) + t * rng.uniform(-hl / 2, hl / 2)
                ph, pw = st.m(rng.uniform(3.5, 6)), st.m(rng.uniform(2, 3))
                if plan.claim(pc[0], pc[1], ph, pw, along, pad=0.5):
                    plan.things.add(pc[0], pc[1], ph, pw, along, urban_sample("pool_water", 1, rng), 0.0, 0.0,
                                    STYLE["flat"], COVER["water"])
            if rng.random() < p_wall:  # a garden wall round the lot (not a building in OSM)
                wall = urban_sample("sand_plaster" if st.climate == "desert" else "roof_concrete", 1, rng)
                half_l, half_d = frontage / 2 - 0.2, lot_d / 2
                for du, dv, a_l, a_w, rot in ((0, -half_d, half_l, 0.02, 0.0), (0, half_d, half_l, 0.02, 0.0),
                                              (-half_l, 0, half_d, 0.02, math.pi / 2), (half_l, 0, half_d, 0.02, math.pi / 2)):
                    wc = lc + t * du + nrm * dv * 1.0
                    plan.things.add(wc[0], wc[1], a_l, a_w, along + rot, wall, 2.2, 0.0, STYLE["flat"], COVER["paved"])
            k = int(rng.integers(0, 4))
            if k:
                dd = rng.uniform(back + 1, max(back + 2, road.width / 2 + lot_d - 1), k)
                ll = rng.uniform(-frontage / 2, frontage / 2, k)
                plan.trees(p[0] + nrm[0] * dd + t[0] * ll, p[1] + nrm[1] * dd + t[1] * ll, int(rng.integers(1, 3)),
                           st.tree_height)
