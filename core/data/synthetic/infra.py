"""City types of world v3 dominated by transport: a port, a rail yard or an airport; a motorway interchange.

Why apart: these scenes are mostly large paved or ballasted surfaces that are
*not* roads and *not* buildings in an OpenStreetMap-derived mask, which is
exactly what a network must learn not to paint:

* railways (``railway=rail``) are never roads, so a rail yard of 30 tracks is
  ballast in the image and empty in both masks;
* runways, taxiways and aprons are ``aeroway=*`` areas, never ``highway=*``,
  so they are paved areas (cover ``paved``), not roads, although they look
  like very wide roads; the airport's access roads are roads;
* quays, container yards and parking lots are areas; containers and ships are
  neither buildings nor roads; warehouses and terminals are buildings;
* motorway carriageways and their ramps (``motorway``, ``motorway_link``) are roads.
"""

from __future__ import annotations

import math

import numpy as np

from .cities import Block, CityStyle, colours, european_blocks, put
from .districts import desert_city, industrial, tropical_city, villa_suburb
from .geometry import smooth_curve
from .land import COVER
from .roofs import urban_sample
from .urban import GROUND, STYLE, CityPlan, Warp

__all__ = ["port_rail_airport", "motorway_interchange", "town_in"]


def town_in(plan: CityPlan, st: CityStyle, region: np.ndarray, industry: float = 0.0) -> None:
    """A town of the scene's climate (or, with probability ``industry``, an industrial estate) inside ``region``.

    The rest of the scene is kept free while it is built, so its streets stop at the region's edge.
    """
    saved = plan.free.copy()
    plan.free |= ~region
    plan.ground[region] = GROUND["urban"]
    if plan.rng.random() < industry:
        industrial(plan, st)
    elif st.climate == "desert":
        desert_city(plan, st)
    elif st.climate == "tropical":
        tropical_city(plan, st)
    elif plan.rng.random() < 0.5:
        european_blocks(plan, st)
    else:
        villa_suburb(plan, st)
    plan.free = saved


def _local(plan: CityPlan, warp: Warp):
    """Local (u, v) of every pixel for a warp without bending (rotation about its centre)."""
    c, s = math.cos(warp.theta), math.sin(warp.theta)
    dy, dx = plan.yy - warp.cy, plan.xx - warp.cx
    return dx * c + dy * s, -dx * s + dy * c


def _containers(plan: CityPlan, st: CityStyle, warp: Warp, b: Block) -> None:
    """Blocks of stacked containers (12.2 x 2.4 m) in rows with driving lanes between them."""
    rng = plan.rng
    plan.paint_rect(*warp(b.cu, b.cv), b.lu / 2, b.lv / 2, float(warp.angle(b.cu, b.cv)), "concrete_road")
    clen, cwid = st.m(12.2), st.m(2.44)
    rows = np.arange(b.v0 + st.m(8), b.v1 - st.m(8), cwid * 6 + st.m(12))
    cols = np.arange(b.u0 + st.m(8), b.u1 - st.m(8), clen + st.m(1.5))
    for v in rows:
        for j in range(6):
            k = cols.size
            if k == 0:
                break
            keep = rng.random(k) < 0.85
            cu = cols[keep] + clen / 2
            paint = rng.choice(["metal_painted_red", "metal_painted_blue", "white_paint", "metal_painted_green",
                                "metal_galvanised", "metal_rusty"], size=keep.sum())
            col = np.stack([urban_sample(p, 1, rng)[0] for p in paint]) if keep.any() else np.zeros((0, 4))
            put(plan, warp, cu, np.full(cu.size, v + (j + 0.5) * cwid), clen / 2, cwid / 2 - 0.02, 0.0, col,
                2.6 * rng.integers(1, 5, cu.size), things=True)


def _port(plan: CityPlan, st: CityStyle) -> None:
    rng, n = plan.rng, plan.n
    warp = Warp.random(n, rng, 0.0)
    uu, vv = _local(plan, warp)
    coast = rng.uniform(0.05, 0.3) * n
    sea = vv > coast
    # piers into the sea, basins between them
    u = -n
    piers = []
    while u < n:
        width = st.m(rng.uniform(90, 200))
        length = st.m(rng.uniform(150, 400))
        piers.append(Block(u, u + width, coast - 1, coast + length))
        u += width + st.m(rng.uniform(80, 160))
    for p in piers:
        sea &= ~((uu > p.u0) & (uu < p.u1) & (vv < p.v1))
    plan.add_water(sea)
    plan.info["sea_share"] = round(float(sea.mean()), 3)
    plan.ground[:] = GROUND["urban"]
    # the quay road and a rail line behind the terminal
    back = coast - min(st.m(rng.uniform(120, 250)), 0.45 * n)  # the quay road stays in the scene
    plan.road(warp.line(-n, back, n, back), "primary", rng.uniform(9, 14), st.main_road)
    plan.road(warp.line(-n, back + st.m(20), n, back + st.m(20)), "rail", 8.0, "ballast", rail=True)
    quay = Block(-n, n, back + st.m(28), coast - st.m(2))
    for p in piers + [quay]:
        inner = Block(p.u0 + st.m(15), p.u1 - st.m(15), p.v0 + st.m(15), p.v1 - st.m(15))
        if inner.lu < 10 or inner.lv < 10:
            continue
        if rng.random() < 0.65:
            _containers(plan, st, warp, inner)
        else:  # a warehouse quay: sheds along the pier
            plan.paint_rect(*warp(inner.cu, inner.cv), inner.lu / 2 + st.m(12), inner.lv / 2 + st.m(12),
                            float(warp.angle(inner.cu, inner.cv)), "concrete_road")
            for v in np.arange(inner.v0 + st.m(25), inner.v1 - st.m(20), st.m(70)):
                put(plan, warp, inner.cu, v, inner.lu / 2 - st.m(10), st.m(rng.uniform(15, 25)), 0.0,
                    colours(plan, st, "warehouse", 1), rng.uniform(8, 14))
        # ships moored along the pier sides
        for side in (-1, 1):
            if rng.random() < 0.6 and p is not quay:
                length, beam = st.m(rng.uniform(120, 280)), st.m(rng.uniform(20, 40))
                cu = p.u0 - beam / 2 - st.m(3) if side < 0 else p.u1 + beam / 2 + st.m(3)
                cv = p.v1 - length / 2 - st.m(rng.uniform(5, 40))
                y, x = warp(cu, cv)
                ang = float(warp.angle(cu, cv)) + math.pi / 2
                plan.afloat.add(y, x, length / 2, beam / 2, ang, urban_sample("ship_deck", 1, rng), rng.uniform(12, 25),
                                cover=COVER["paved"])
    # the landward side: the town beyond a strip of warehouses and parking along the road
    town_in(plan, st, vv < back - st.m(rng.uniform(90, 160)), industry=0.5)
    for u in np.arange(-n * 0.9, n * 0.9, st.m(rng.uniform(90, 160))):
        hl, hw = st.m(rng.uniform(25, 60)), st.m(rng.uniform(15, 35))
        v = back - st.m(12) - hw - st.m(rng.uniform(5, 20))
        y, x = warp(u, v)
        ang = float(warp.angle(u, v))
        if plan.claim(y, x, hl, hw, ang, 2.0):
            plan.buildings.add(y, x, hl, hw, ang, colours(plan, st, "warehouse", 1), rng.uniform(7, 14))
            yy, xx = warp(u, v - hw - st.m(10))
            plan.paint_rect(yy, xx, hl, st.m(7), ang, "asphalt_aged", cars=rng.uniform(0.2, 0.7))


def _rail_yard(plan: CityPlan, st: CityStyle) -> None:
    rng, n = plan.rng, plan.n
    warp = Warp.random(n, rng, 0.0)
    uu, vv = _local(plan, warp)
    width = st.m(rng.uniform(60, 160))
    v0 = rng.uniform(-0.25, 0.1) * n
    band = (vv > v0 - st.m(15)) & (vv < v0 + width + st.m(15))
    town_in(plan, st, ~band)  # the town on both sides; streets stop at the yard
    plan.road(warp.line(-n, v0 - st.m(12), n, v0 - st.m(12)), "secondary", rng.uniform(8, 12), st.main_road)
    # the yard: many parallel tracks (drawn as one ballast band with a track every 4.5 m), and a fan at one end
    plan.road(warp.line(-n, v0 + width / 2, n, v0 + width / 2), "rail", width * st.px, "ballast", rail=True)
    for _k in range(int(rng.integers(2, 6))):
        u0 = rng.uniform(-0.3, 0.3) * n
        dv = rng.choice([-1, 1]) * st.m(rng.uniform(30, 120))
        pts = smooth_curve(np.array([warp(u0 - n * 0.2, v0 + width / 2), warp(u0, v0 + width / 2 + dv / 2),
                                     warp(u0 + n, v0 + width / 2 + dv)]).reshape(3, 2), 2.0)
        plan.road(pts, "rail", 4.0, "ballast", rail=True)
    if rng.random() < 0.8:  # a bridge carries a road over the yard
        u = rng.uniform(-0.3, 0.3) * n
        plan.road(warp.line(u, -n, u, n), "primary", rng.uniform(10, 16), st.main_road)
    hall_l = st.m(rng.uniform(150, 300))
    y, x = warp(rng.uniform(-0.2, 0.2) * n, v0 - st.m(30))
    ang = float(warp.angle(0.0, v0))
    if plan.claim(y, x, hall_l / 2, st.m(15), ang, 1.0):
        plan.buildings.add(y, x, hall_l / 2, st.m(15), ang, colours(plan, st, "warehouse", 1), 12.0, 10.0, STYLE["gable"])


def _airport(plan: CityPlan, st: CityStyle) -> None:
    rng, n = plan.rng, plan.n
    warp = Warp.random(n, rng, 0.0)
    plan.ground[:] = GROUND["lawn"] if st.climate != "desert" else GROUND["bare"]
    ang = float(warp.angle(0.0, 0.0))
    v_rw = max(-st.m(300), -0.45 * n) + rng.uniform(-0.05, 0.05) * n  # runway to access road fits the scene
    rw_w = st.m(rng.uniform(45, 60))
    rw_len = st.m(rng.uniform(1800, 3500))
    u_c = rng.uniform(-0.5, 0.5) * rw_len
    surface = "concrete_road" if rng.random() < 0.5 else "asphalt_aged"
    plan.paint_rect(*warp(u_c, v_rw), rw_len / 2, rw_w / 2, ang, surface)
    # centreline dashes and threshold stripes (white paint)
    for u in np.arange(u_c - rw_len / 2 + st.m(60), u_c + rw_len / 2 - st.m(60), st.m(50)):
        plan.paint_rect(*warp(u, v_rw), st.m(15), st.m(0.45), ang, "white_paint")
    for end in (-1, 1):
        for k in range(-4, 5):
            if k:
                plan.paint_rect(*warp(u_c + end * (rw_len / 2 - st.m(30)), v_rw + k * st.m(2.5) * 1.8), st.m(15),
                                st.m(0.9), ang, "white_paint")
    # the parallel taxiway, connectors, the apron with aircraft, the terminal and hangars
    v_tw = v_rw + st.m(rng.uniform(150, 200))
    plan.paint_rect(*warp(u_c, v_tw), rw_len / 2 - st.m(50), st.m(11.5), ang, "asphalt_aged")
    for u in np.arange(u_c - rw_len / 2 + st.m(100), u_c + rw_len / 2, st.m(rng.uniform(300, 500))):
        plan.paint_rect(*warp(u, (v_rw + v_tw) / 2), st.m(11.5), (v_tw - v_rw) / 2, ang, "asphalt_aged")
    apron = Block(rng.uniform(-0.6, -0.1) * n, rng.uniform(0.1, 0.6) * n, v_tw + st.m(20), v_tw + st.m(rng.uniform(150, 280)))
    plan.paint_rect(*warp(apron.cu, apron.cv), apron.lu / 2, apron.lv / 2, ang, "concrete_road")
    for u in np.arange(apron.u0 + st.m(40), apron.u1 - st.m(40), st.m(rng.uniform(55, 80))):
        if rng.random() < 0.7:
            span, length = st.m(rng.uniform(30, 64)), st.m(rng.uniform(30, 70))
            cv = apron.v0 + length / 2 + st.m(10)
            white = urban_sample("white_paint", 1, rng)
            put(plan, warp, u, cv, st.m(2.5), length / 2, 0.0, white, 6.0, things=True)  # fuselage
            put(plan, warp, u, cv - length * 0.05, span / 2, st.m(3.5), 0.0, white, 4.0, things=True)  # wings
    term = Block(apron.u0, apron.u1, apron.v1 + st.m(5), apron.v1 + st.m(rng.uniform(40, 80)))
    put(plan, warp, term.cu, term.cv, term.lu / 2, term.lv / 2, 0.0, colours(plan, st, "warehouse", 1), rng.uniform(15, 25))
    for k in range(int(rng.integers(1, 4))):
        u = apron.u1 + st.m(60 + 110 * k)
        put(plan, warp, u, apron.v0 + st.m(50), st.m(40), st.m(35), 0.0, colours(plan, st, "warehouse", 1), 20.0)
    # landside: the access road, parking, and the town beyond the fence
    v_road = term.v1 + st.m(25)
    plan.road(warp.line(-n, v_road, n, v_road), "primary", rng.uniform(12, 20), st.main_road)
    plan.paint_rect(*warp(term.cu, v_road + st.m(70)), term.lu / 2, st.m(50), ang, "asphalt_aged", cars=rng.uniform(0.3, 0.8))
    plan.info["runway_width_m"] = round(float(rw_w * st.px), 1)
    uu, vv = _local(plan, warp)
    town_in(plan, st, vv > v_road + st.m(150))


def port_rail_airport(plan: CityPlan, st: CityStyle) -> None:
    """A port (docks, containers, ships), a rail yard (tracks are not roads) or an airport (runways are not roads)."""
    variant = str(plan.rng.choice(["port", "rail_yard", "airport"], p=[0.4, 0.3, 0.3]))
    plan.info["variant"] = variant
    {"port": _port, "rail_yard": _rail_yard, "airport": _airport}[variant](plan, st)


def motorway_interchange(plan: CityPlan, st: CityStyle) -> None:
    """Two motorways (two carriageways each) crossing in a cloverleaf with ramps, fields around, a town edge."""
    rng, n = plan.rng, plan.n
    warp = Warp.random(n, rng, 0.0)
    warp.cy, warp.cx = rng.uniform(0.3, 0.7, 2) * n
    plan.ground[:] = GROUND["field"] if st.climate != "desert" else GROUND["bare"]
    cw = rng.uniform(11, 16)
    median = st.m(rng.uniform(4, 12))
    off = median / 2 + st.m(cw) / 2
    surface = "concrete_road" if rng.random() < 0.3 else "asphalt_fresh"
    reach = 1.5 * n
    uu, vv = _local(plan, warp)
    r_loop = st.m(rng.uniform(45, 75))
    # the town edge first: one quadrant beyond the ramps
    su, sv = rng.choice([-1, 1], 2)
    edge = r_loop * 2 + st.m(rng.uniform(60, 160))
    town_in(plan, st, (uu * su > edge) & (vv * sv > edge))
    for axis in (0, 1):
        for o in (-off, off):
            pts = warp.line(-reach, o, reach, o) if axis == 0 else warp.line(o, -reach, o, reach)
            road = plan.planner.road(pts, "motorway", width_m=cw, surface=surface)
            if road is not None and axis == 0 and rng.random() < 0.5:
                plan.street_trees(road, 9.0, 2, st.tree_height, gap_m=8.0)
    ramp_w = rng.uniform(5.5, 7.5)
    clover = True
    lane = off + st.m(cw) / 2 + st.m(ramp_w) / 2 + st.m(4)  # ramps run beside the outer carriageway
    for qa in (-1, 1):
        for qb in (-1, 1):
            if clover and rng.random() < 0.9:  # a 270-degree loop tangent to both motorways
                c = np.array([qa * (r_loop + lane), qb * (r_loop + lane)])
                t1 = math.atan2(-qb, 0.0)
                t2 = math.atan2(0.0, -qa)
                delta = (t2 - t1) % (2 * math.pi)
                if delta < math.pi:
                    delta -= 2 * math.pi
                t = t1 + np.linspace(0, 1, 120) * delta
                lu, lv = c[0] + r_loop * np.cos(t), c[1] + r_loop * np.sin(t)
                # both ends run on beside the carriageway until they meet the slip road
                join = 2 * r_loop + lane + st.m(20)
                lu = np.concatenate([np.linspace(qa * join * 1.5, lu[0], 12)[:-1], lu, np.full(11, qa * lane)])
                lv = np.concatenate([np.full(11, qb * lane), lv, np.linspace(lv[-1], qb * join * 1.5, 12)[1:]])
                pts = np.stack(warp(lu, lv), 1)
                plan.planner.road(pts, "motorway_link", width_m=ramp_w, surface=surface)
            # the outer slip road: leaves one motorway, bends round outside the loop, joins the other
            out = 2 * r_loop + lane + st.m(20)
            way = np.array([[qa * out * 2.6, qb * off], [qa * out * 2.0, qb * lane], [qa * out * 1.4, qb * lane],
                            [qa * out * 0.98, qb * out * 0.98], [qa * lane, qb * out * 1.4], [qa * lane, qb * out * 2.0],
                            [qa * off, qb * out * 2.6]])  # merges into the carriageways at both ends
            ys, xs = warp(way[:, 0], way[:, 1])
            plan.planner.road(smooth_curve(np.stack([ys, xs], 1), 2.0), "motorway_link", width_m=ramp_w, surface=surface)
    plan.info["interchange"] = "cloverleaf"
    # verges and field edges with some trees
    k = int(n * n * 0.0008)
    plan.trees(rng.uniform(0, n, k), rng.uniform(0, n, k), 2, st.tree_height)
