"""City types of world v3 built on a street grid: one readable function per type.

Why grids: most of the world's urban fabric is blocks between streets, and
what differs between a Barcelona block, a Shanghai superblock, an industrial
estate and a Cairo quarter is the block size, the street width and what fills
a block. Each function lays out a (gently bent) grid with :func:`street_grid`
and fills every block by its own rules; sizes are in metres in the code and
converted to pixels once (``st.m``). Helpers shared with :mod:`.infra` live
here too (:class:`CityStyle`, :func:`colours`, :func:`put`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Tuple

import numpy as np

from .land import COVER
from .roofs import ROOF_MIX, choose, urban_sample
from .urban import GROUND, STYLE, CityPlan, Warp, patches

__all__ = [
    "CityStyle", "Block", "colours", "put", "street_grid", "free_at", "open_block", "split_length", "european_blocks",
    "informal_settlement", "high_rise", "superblocks",
]


#: Gap (px) between a street's edge and the blocks beside it (pavement, and room for the grid's bending).
KERB = 1.3


@dataclass
class CityStyle:
    """Climate-dependent choices of one scene: roof mixes, road surfaces, greenery."""

    climate: str  # temperate, desert, tropical
    px: float

    def m(self, metres):
        """Metres -> HR pixels."""
        return np.asarray(metres) / self.px if np.ndim(metres) else metres / self.px

    def mix(self, cls: str) -> str:
        if self.climate == "desert" and cls == "informal":
            return "informal_dry"
        if self.climate == "desert" and cls in ("european", "house"):
            return "desert"
        if self.climate == "tropical" and cls in ("european", "house"):
            return "tropical"
        return cls

    @property
    def main_road(self) -> str:
        return "asphalt_fresh" if self.climate == "desert" else "asphalt_aged"

    @property
    def minor_road(self) -> str:
        return {"desert": "dirt_road", "tropical": "laterite_road"}.get(self.climate, "asphalt_aged")

    @property
    def tree_height(self) -> Tuple[float, float]:
        return {"desert": (5.0, 10.0), "tropical": (10.0, 25.0)}.get(self.climate, (8.0, 18.0))


@dataclass
class Block:
    """A block between streets in local (u, v) pixels."""

    u0: float
    u1: float
    v0: float
    v1: float

    @property
    def cu(self) -> float:
        return (self.u0 + self.u1) / 2

    @property
    def cv(self) -> float:
        return (self.v0 + self.v1) / 2

    @property
    def lu(self) -> float:
        return self.u1 - self.u0

    @property
    def lv(self) -> float:
        return self.v1 - self.v0


def colours(plan: CityPlan, st: CityStyle, cls: str, k: int) -> np.ndarray:
    """``k`` roof spectra [k, 4] of building class ``cls`` (climate-adjusted mix)."""
    names = choose(plan.rng, ROOF_MIX[st.mix(cls)], k)
    out = np.empty((k, 4), np.float32)
    for name in sorted(set(names.tolist())):  # sorted: the draws must not depend on string hashing
        sel = names == name
        out[sel] = urban_sample(name, int(sel.sum()), plan.rng)
    return out


def put(plan: CityPlan, warp: Warp, u, v, hl, hw, dang, colour, eave, pitch=0.0, style=STYLE["flat"], things=False) -> None:
    """Buildings (or things) given in local coordinates, mapped to the image."""
    u, v = np.atleast_1d(np.asarray(u, np.float64)), np.atleast_1d(np.asarray(v, np.float64))
    y, x = warp(u, v)
    ang = warp.angle(u, v) + dang
    if things:  # containers, aircraft: man-made, not buildings
        plan.things.add(y, x, hl, hw, ang, colour, eave, pitch, style, COVER["paved"])
    else:
        plan.buildings.add(y, x, hl, hw, ang, colour, eave, pitch, style)


def _positions(rng: np.random.Generator, lo: float, hi: float, size: Tuple[float, float]) -> np.ndarray:
    """Grid line positions from ``lo`` to beyond ``hi`` with random gaps in ``size``."""
    pos = [lo - rng.uniform(0, size[1])]
    while pos[-1] < hi:
        pos.append(pos[-1] + rng.uniform(*size))
    return np.asarray(pos)


def street_grid(
    plan: CityPlan, st: CityStyle, warp: Warp, block_m: Tuple[float, float], street: Callable[[int], Tuple[str, float, str]],
    block_v_m: Tuple[float, float] = None, trees_every: int = 0, draw: bool = True,
) -> Tuple[List[Block], List[Tuple[int, float, Tuple[str, float, str]]]]:
    """Streets along both local axes (kind, width m, surface from ``street(i)``) and the blocks between them.

    Returns the blocks and the street lines (axis, position, spec); ``draw=False`` only lays them out.
    """
    rng, n = plan.rng, plan.n
    reach = 0.85 * n
    us = _positions(rng, -reach, reach, st.m(np.asarray(block_m)))
    vs = _positions(rng, -reach, reach, st.m(np.asarray(block_v_m or block_m)))
    wu = [street(i) for i in range(len(us))]
    wv = [street(i + 7) for i in range(len(vs))]
    lines = [(0, p, s) for p, s in zip(us, wu)] + [(1, p, s) for p, s in zip(vs, wv)]
    for axis, pos, (kind, width, surface) in lines if draw else []:
        pts = warp.line(pos, -reach - 40, pos, reach + 40) if axis == 0 else warp.line(-reach - 40, pos, reach + 40, pos)
        road = plan.road(pts, kind, width, surface)
        if trees_every and width >= 18 and road is not None:
            plan.street_trees(road, rng.uniform(7, 11), 2, st.tree_height)
    blocks = []
    for i in range(len(us) - 1):
        for j in range(len(vs) - 1):
            # a kerb of ``KERB`` px: the block's rectangle bends a little less than its streets
            b = Block(us[i] + st.m(wu[i][1]) / 2 + KERB, us[i + 1] - st.m(wu[i + 1][1]) / 2 - KERB,
                      vs[j] + st.m(wv[j][1]) / 2 + KERB, vs[j + 1] - st.m(wv[j + 1][1]) / 2 - KERB)
            y, x = warp(b.cu, b.cv)
            r = 0.5 * math.hypot(b.lu, b.lv)
            if -r < y < n + r and -r < x < n + r and b.lu > 4 and b.lv > 4:
                blocks.append(b)
    return blocks, lines


def free_at(plan: CityPlan, warp: Warp, b: Block) -> bool:
    """Whether a block's centre lies on reserved free land or water (such blocks stay as they are)."""
    y, x = warp(b.cu, b.cv)
    yi, xi = int(np.clip(y, 0, plan.n - 1)), int(np.clip(x, 0, plan.n - 1))
    return bool(plan.free[yi, xi] or plan.water[yi, xi])


def open_block(plan: CityPlan, st: CityStyle, warp: Warp, b: Block, use: str, inset: float = 0.0) -> None:
    """A block without buildings: a park, a square, a parking lot, vacant land."""
    rng = plan.rng
    y, x = warp(b.cu, b.cv)
    ang = float(warp.angle(b.cu, b.cv))
    hl, hw = b.lu / 2 - inset, b.lv / 2 - inset
    if use == "park":
        plan.ground_rect(y, x, hl, hw, ang, "park" if rng.random() < 0.6 else "lawn")
        k = int(hl * hw * rng.uniform(0.02, 0.08))
        uu, vv = rng.uniform(-hl, hl, k), rng.uniform(-hw, hw, k)
        c, s = math.cos(ang), math.sin(ang)
        plan.trees(y + uu * s + vv * c, x + uu * c - vv * s, int(rng.integers(1, 4)), st.tree_height)
    elif use == "square":
        plan.paint_rect(y, x, hl, hw, ang, "paving_stone")
        k = int(2 * (hl + hw) / 3)
        t = rng.uniform(-1, 1, k)
        side = rng.choice([-1, 1], k)
        along_u = rng.random(k) < 0.5
        uu = np.where(along_u, t * hl, side * (hl - 1.5))
        vv = np.where(along_u, side * (hw - 1.5), t * hw)
        c, s = math.cos(ang), math.sin(ang)
        plan.trees(y + uu * s + vv * c, x + uu * c - vv * s, 1, st.tree_height)
    elif use == "parking":
        plan.paint_rect(y, x, hl, hw, ang, "asphalt_aged", cars=rng.uniform(0.3, 0.9))
    else:  # vacant land: scrub or bare ground
        plan.ground_rect(y, x, hl, hw, ang, "scrub" if st.climate != "desert" else "bare")


def split_length(rng: np.random.Generator, length: float, size: Tuple[float, float]) -> Tuple[np.ndarray, np.ndarray]:
    """Cut ``length`` px into pieces of ``size`` px: (centres, half lengths) measured from 0."""
    cuts = [0.0]
    while cuts[-1] < length - size[0]:
        cuts.append(cuts[-1] + rng.uniform(*size))
    cuts[-1] = length
    cuts = np.asarray(cuts)
    return (cuts[1:] + cuts[:-1]) / 2, (cuts[1:] - cuts[:-1]) / 2


def _slab_rows(plan: CityPlan, st: CityStyle, warp: Warp, b: Block, depth: float, slab: float, gap: float,
               spacing: float, height: float, dang: float) -> None:
    """Parallel rows of slabs filling block ``b`` (rows along u, or along v when ``dang`` is 90 degrees)."""
    rng = plan.rng
    along, across = (b.lu, b.lv) if dang == 0 else (b.lv, b.lu)
    if along < slab or across < depth:
        return
    rows = np.arange(depth / 2, across - depth / 2 + 1e-6, spacing)
    cols = np.arange(slab / 2, along - slab / 2 + 1e-6, slab + gap)
    rows += (across - depth / 2 - rows[-1]) / 2 if rows.size else 0
    cols += (along - slab / 2 - cols[-1]) / 2 if cols.size else 0
    ga, gr = np.meshgrid(cols, rows)
    k = ga.size
    if dang == 0:
        u, v = b.u0 + ga.ravel(), b.v0 + gr.ravel()
    else:
        u, v = b.u0 + gr.ravel(), b.v0 + ga.ravel()
    put(plan, warp, u, v, slab / 2, depth / 2, dang, colours(plan, st, "slab", k), height * rng.uniform(0.9, 1.1, k))


# ---------------------------------------------------------------------- city types
def european_blocks(plan: CityPlan, st: CityStyle) -> None:
    """Perimeter blocks with courtyards on a bending grid, boulevards with trees, squares and parks."""
    rng = plan.rng
    warp = Warp.random(plan.n, rng, rng.uniform(0.005, 0.03))
    boulevard_every = int(rng.integers(3, 6))

    def street(i: int) -> Tuple[str, float, str]:
        if i % boulevard_every == 0:
            return "primary", float(rng.uniform(18, 28)), st.main_road
        return "residential", float(rng.uniform(7, 12)), "asphalt_aged" if rng.random() < 0.8 else "paving_stone"

    blocks, _lines = street_grid(plan, st, warp, (70, 130), street, (55, 110), trees_every=1)
    for b in blocks:
        r = rng.random()
        if free_at(plan, warp, b):
            continue
        if r < 0.06:
            open_block(plan, st, warp, b, "park")
            continue
        if r < 0.12:
            open_block(plan, st, warp, b, "square")
            continue
        sidewalk = st.m(rng.uniform(0.5, 2.5))  # plus the kerb gap: a pavement of 5-7 m
        depth = st.m(rng.uniform(11, 16))
        U0, U1, V0, V1 = b.u0 + sidewalk, b.u1 - sidewalk, b.v0 + sidewalk, b.v1 - sidewalk
        depth = min(depth, (U1 - U0) / 2, (V1 - V0) / 2)
        if depth < 2:
            continue
        base_h = rng.uniform(12, 24)
        pitched = rng.random() < (0.75 if st.climate == "temperate" else 0.3)
        pitch = rng.uniform(30, 45) if pitched else 0.0
        block_col = colours(plan, st, "european", 1)[0]
        # four wings: two long ones over the full length, two short ones between them
        edges = [((U0, U1), V0 + depth / 2, 0.0), ((U0, U1), V1 - depth / 2, 0.0),
                 ((V0 + depth, V1 - depth), U0 + depth / 2, math.pi / 2), ((V0 + depth, V1 - depth), U1 - depth / 2, math.pi / 2)]
        for (a0, a1), across, dang in edges:
            if a1 - a0 < 2:
                continue
            cen, half = split_length(rng, a1 - a0, st.m((8.0, 26.0)))
            k = cen.size
            col = np.where(rng.random((k, 1)) < 0.55, block_col[None], colours(plan, st, "european", k))
            col = col * np.exp(rng.normal(0, 0.06, (k, 1)))
            along = a0 + cen
            u, v = (along, np.full(k, across)) if dang == 0 else (np.full(k, across), along)
            eave = np.clip(base_h + rng.normal(0, 3, k), 8, 40)
            style = np.where(pitched, STYLE["gable"], STYLE["flat"])
            put(plan, warp, u, v, half, depth / 2, dang, col, eave, pitch, style)
        # the courtyard: green or paved, with trees; now and then a workshop in it
        inner_l, inner_w = (U1 - U0) / 2 - depth, (V1 - V0) / 2 - depth
        if inner_l > 2 and inner_w > 2:
            y, x = warp(b.cu, b.cv)
            ang = float(warp.angle(b.cu, b.cv))
            plan.ground_rect(y, x, inner_l, inner_w, ang, "lawn" if rng.random() < 0.6 else "urban")
            k = int(inner_l * inner_w * rng.uniform(0.0, 0.05))
            uu, vv = rng.uniform(-inner_l + 1, inner_l - 1, k), rng.uniform(-inner_w + 1, inner_w - 1, k)
            yy, xx = warp(b.cu + uu, b.cv + vv)
            plan.trees(yy, xx, int(rng.integers(1, 3)), st.tree_height)
            if rng.random() < 0.3 and inner_l > 5 and inner_w > 4:
                put(plan, warp, b.cu, b.cv - inner_w + st.m(5), min(inner_l - 1, st.m(12)), st.m(3.5), 0.0,
                    colours(plan, st, "european", 1), rng.uniform(3, 6), 0.0)


def informal_settlement(plan: CityPlan, st: CityStyle) -> None:
    """Very dense tiny roofs (3-8 m) in clusters split by 1.5-3 m footpaths, in patches of their own angle.

    Footpaths narrower than 3 m are not roads in the mask (OSM footway/path); the
    dirt lanes (3.5-6 m) and the paved road through the settlement are.
    """
    rng, n = plan.rng, plan.n
    # lanes: a paved road and winding dirt lanes
    from .terrain import make_curve

    for _k in range(int(rng.integers(1, 3))):
        c = make_curve(n, rng, wiggle=rng.uniform(5, 20), spacing=(60.0, 140.0))
        plan.road(c.points, "secondary", rng.uniform(6, 9), st.main_road if rng.random() < 0.7 else st.minor_road)
    for _k in range(int(rng.poisson(4)) + 2):
        c = make_curve(n, rng, wiggle=rng.uniform(10, 30), spacing=(30.0, 70.0))
        plan.road(c.points, "track", rng.uniform(3.5, 6.0), "dirt_road" if st.climate != "tropical" else "laterite_road")
    # patches: Voronoi cells of seeds on a jittered grid (40-120 m), each with its own orientation and roof size
    size = st.m(rng.uniform(45, 110))
    patch, seeds = patches(n, size, rng)
    base_ang = rng.uniform(0, np.pi)
    out = []
    for p in np.unique(patch):
        ang = base_ang + rng.normal(0, 0.35)
        c, s = math.cos(ang), math.sin(ang)
        cy, cx = seeds[p]
        u = v = np.array([-1.6 * size, 1.6 * size])
        roof = st.m(rng.uniform(3.5, 7.0))

        def cells(lo: float, hi: float, roof: float) -> Tuple[np.ndarray, np.ndarray]:
            pos, size = [], []
            t = lo
            while t < hi:
                w = roof * rng.uniform(0.6, 1.4)
                pos.append(t + w / 2)
                size.append(w)
                gap = st.m(rng.uniform(1.5, 3.0)) if rng.random() < 0.35 else 0.0  # shared walls inside a cluster
                t += w + gap
            return np.asarray(pos), np.asarray(size)

        pu, su = cells(u.min(), u.max(), roof)
        pv, sv = cells(v.min(), v.max(), roof)
        gu, gv = np.meshgrid(pu, pv)
        hu, hv = np.meshgrid(su / 2, sv / 2)
        keep = rng.random(gu.shape) < rng.uniform(0.82, 0.97)  # a few open yards
        gu, gv, hu, hv = gu[keep], gv[keep], hu[keep], hv[keep]
        y = cy + gu * s + gv * c
        x = cx + gu * c - gv * s
        # whole roofs only: every corner inside this patch (patches are convex)
        ok = np.ones(y.size, bool)
        for su_, sv_ in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
            cu_, cv_ = gu + su_ * hu, gv + sv_ * hv
            yy, xx = cy + cu_ * s + cv_ * c, cx + cu_ * c - cv_ * s
            yi, xi = np.clip(yy.astype(np.int64), 0, n - 1), np.clip(xx.astype(np.int64), 0, n - 1)
            ok &= patch[yi, xi] == p
        out.append((y[ok], x[ok], hu[ok], hv[ok], np.full(ok.sum(), ang)))
    if not out:
        return
    y, x, hl, hw, ang = (np.concatenate(v) for v in zip(*out))
    m = y.size
    storeys = np.where(rng.random(m) < 0.12, rng.integers(2, 4, m), 1)
    eave = storeys * rng.uniform(2.6, 3.2, m)
    col = colours(plan, st, "informal", m) * np.exp(rng.normal(0, 0.12, (m, 1)))
    style = np.where(rng.random(m) < 0.6, STYLE["gable"], STYLE["flat"])
    plan.buildings.add(y, x, hl, hw, ang + rng.normal(0, 0.04, m), col, eave, rng.uniform(4, 12, m), style)
    # a few trees in open yards
    k = int(rng.uniform(0.001, 0.004) * n * n)
    plan.trees(rng.uniform(0, n, k), rng.uniform(0, n, k), int(rng.integers(1, 3)), st.tree_height)
    plan.ground[:] = np.where(plan.free, plan.ground, GROUND["bare"])  # bare trodden ground between roofs


def high_rise(plan: CityPlan, st: CityStyle) -> None:
    """Towers on podiums between wide multi-lane roads; plazas, parking lots and a park."""
    rng = plan.rng
    warp = Warp.random(plan.n, rng, rng.uniform(0.0, 0.015))
    tall = rng.uniform(60, 140)  # typical tower height of this city (m)

    def street(i: int) -> Tuple[str, float, str]:
        if i % 3 == 0:
            return "primary", float(rng.uniform(22, 36)), st.main_road
        return "secondary", float(rng.uniform(12, 20)), st.main_road

    blocks, _lines = street_grid(plan, st, warp, (90, 170), street, trees_every=1)
    for b in blocks:
        r = rng.random()
        if free_at(plan, warp, b):
            continue
        if r < 0.08:
            open_block(plan, st, warp, b, "park")
            continue
        if r < 0.18:
            open_block(plan, st, warp, b, "parking", inset=st.m(3))
            continue
        if r < 0.26:
            open_block(plan, st, warp, b, "square", inset=st.m(2))
        setback = st.m(rng.uniform(3, 8))
        hl, hw = b.lu / 2 - setback, b.lv / 2 - setback
        if hl < 3 or hw < 3:
            continue
        if r >= 0.26 and rng.random() < 0.6:  # a podium over most of the block
            plan.paint_rect(*warp(b.cu, b.cv), hl + setback / 2, hw + setback / 2, float(warp.angle(b.cu, b.cv)), "paving_stone")
            put(plan, warp, b.cu, b.cv, hl, hw, 0.0, colours(plan, st, "tower", 1), rng.uniform(8, 22))
        # one to four towers in the cells of a 2x2 split of the block
        cells = [(su, sv) for su in (-1, 1) for sv in (-1, 1)]
        for su, sv in [cells[i] for i in rng.permutation(4)[: int(rng.integers(1, 5))]]:
            side_l = min(st.m(rng.uniform(22, 48)), hl * 0.9)
            side_w = min(side_l * rng.uniform(0.6, 1.0), hw * 0.9)
            cu = b.cu + su * (hl / 2) * rng.uniform(0.6, 1.0) if hl > side_l else b.cu
            cv = b.cv + sv * (hw / 2) * rng.uniform(0.6, 1.0) if hw > side_w else b.cv
            cu = float(np.clip(cu, b.cu - hl + side_l / 2, b.cu + hl - side_l / 2))
            cv = float(np.clip(cv, b.cv - hw + side_w / 2, b.cv + hw - side_w / 2))
            put(plan, warp, cu, cv, side_l / 2, side_w / 2, 0.0, colours(plan, st, "tower", 1),
                float(np.clip(rng.lognormal(np.log(tall), 0.4), 35, 320)))


def superblocks(plan: CityPlan, st: CityStyle) -> None:
    """Slab blocks in big superblocks between wide dual-carriageway arterials (Soviet or Chinese layout)."""
    rng = plan.rng
    plan.ground[~plan.free] = GROUND["lawn"]
    chinese = rng.random() < 0.5
    warp = Warp.random(plan.n, rng, rng.uniform(0.0, 0.02), theta=rng.normal(0, 0.15) if chinese else None)
    median = rng.uniform(3, 10)
    cw = rng.uniform(9, 14)

    def street(i: int) -> Tuple[str, float, str]:
        return "primary", 2 * cw + median, st.main_road

    # the grid reserves the arterial corridor; each arterial is drawn as two carriageways and a median
    blocks, lines = street_grid(plan, st, warp, (240, 400), street, draw=False)
    reach = 0.85 * plan.n + 40
    half = st.m(median / 2 + cw / 2)
    for axis, pos, _spec in lines:
        for off in (-half, half):
            p = pos + off
            pts = warp.line(p, -reach, p, reach) if axis == 0 else warp.line(-reach, p, reach, p)
            plan.road(pts, "primary", cw, st.main_road)
    inset = st.m(median / 2 + cw) + st.m(rng.uniform(3, 8))
    for b in blocks:
        if free_at(plan, warp, b):
            continue
        bi = Block(b.u0 + inset, b.u1 - inset, b.v0 + inset, b.v1 - inset)
        if bi.lu < 20 or bi.lv < 20:
            continue
        plan.ground_rect(*warp(bi.cu, bi.cv), bi.lu / 2, bi.lv / 2, float(warp.angle(bi.cu, bi.cv)), "lawn")
        # an inner service loop
        ring = st.m(rng.uniform(8, 16))
        for p in ((bi.u0 + ring, bi.v0 + ring, bi.u1 - ring, bi.v0 + ring), (bi.u0 + ring, bi.v1 - ring, bi.u1 - ring, bi.v1 - ring),
                  (bi.u0 + ring, bi.v0 + ring, bi.u0 + ring, bi.v1 - ring), (bi.u1 - ring, bi.v0 + ring, bi.u1 - ring, bi.v1 - ring)):
            plan.road(warp.line(*p), "service", rng.uniform(4.5, 6.5), st.main_road)
        for side in (-1, 1):  # two entrances from the arterials
            v_out = b.v0 - 2.0 if side < 0 else b.v1 + 2.0
            v_in = bi.v0 + ring if side < 0 else bi.v1 - ring
            u = bi.cu + rng.uniform(-0.3, 0.3) * (bi.lu - 2 * ring)
            plan.road(warp.line(u, v_out, u, v_in, 2.0), "service", rng.uniform(5, 7), st.main_road)
        depth = st.m(rng.uniform(11, 16))
        inner = Block(bi.u0 + ring + st.m(6), bi.u1 - ring - st.m(6), bi.v0 + ring + st.m(6), bi.v1 - ring - st.m(6))
        if chinese:  # parallel rows facing south, spaced for winter sun
            h = rng.uniform(25, 80)
            _slab_rows(plan, st, warp, inner, depth, st.m(rng.uniform(55, 100)), st.m(rng.uniform(6, 15)),
                       depth + st.m(h * rng.uniform(0.45, 0.75)), h, 0.0)
            plan.paint_rect(*warp(bi.cu, bi.cv), bi.lu / 2 - ring - 2, st.m(4), float(warp.angle(bi.cu, bi.cv)) + math.pi / 2,
                            "asphalt_aged", cars=0.5)
        else:  # a mikrorayon: long slabs along the service loop, rows inside, now and then a school
            for axis in (0, 1):
                length = inner.lu if axis == 0 else inner.lv
                for side in (-1, 1):
                    cen, hl = split_length(rng, length, st.m((70.0, 180.0)))
                    keep = rng.random(cen.size) < 0.85
                    cen, hl = cen[keep], hl[keep] - st.m(rng.uniform(6, 14))
                    if cen.size == 0:
                        continue
                    if axis == 0:
                        u, v = inner.u0 + cen, np.full(cen.size, inner.cv + side * (inner.lv / 2 - depth / 2))
                    else:  # the short sides stay clear of the long ones' ends
                        u, v = np.full(cen.size, inner.cu + side * (inner.lu / 2 - depth / 2)), inner.v0 + cen
                        keep = np.abs(v - inner.cv) < inner.lv / 2 - 2 * depth
                        u, v, hl = u[keep], v[keep], np.minimum(hl[keep], inner.lv / 2 - 2 * depth)
                    put(plan, warp, u, v, np.maximum(hl, 3), depth / 2, 0.0 if axis == 0 else math.pi / 2,
                        colours(plan, st, "slab", u.size), rng.choice([15.0, 27.0, 36.0, 45.0], u.size))
            core = Block(inner.u0 + 2.5 * depth, inner.u1 - 2.5 * depth, inner.v0 + 2.5 * depth, inner.v1 - 2.5 * depth)
            if core.lu > 10 and core.lv > 10:
                school = rng.random() < 0.4 and core.lv > st.m(110) and core.lu > st.m(70)
                if school:  # a school and its sports pitch at one end of the core, rows in the rest
                    put(plan, warp, core.cu, core.v0 + st.m(8), st.m(30), st.m(8), 0.0, colours(plan, st, "slab", 1), 11.0)
                    y, x = warp(core.cu, core.v0 + st.m(40))
                    plan.paint_rect(y, x, st.m(30), st.m(15), float(warp.angle(core.cu, core.cv)), "artificial_turf")
                    core = Block(core.u0, core.u1, core.v0 + st.m(70), core.v1)
                h = float(rng.choice([27.0, 36.0, 45.0]))
                _slab_rows(plan, st, warp, core, depth, st.m(rng.uniform(60, 120)), st.m(rng.uniform(10, 25)),
                           depth + st.m(rng.uniform(25, 45)), h, float(rng.choice([0.0, math.pi / 2])))
        k = int(bi.lu * bi.lv * rng.uniform(0.01, 0.04))
        yy, xx = warp(bi.cu + rng.uniform(-0.5, 0.5, k) * bi.lu, bi.cv + rng.uniform(-0.5, 0.5, k) * bi.lv)
        plan.trees(yy, xx, int(rng.integers(1, 3)), st.tree_height)
