"""Land of world v2: the parcel mosaic, land cover per parcel, and the per-pixel surface layers.

Why this shape: rural land seen from 3-10 m is a mosaic of parcels with
sharp, mostly straight boundaries (fields, meadows, forest compartments),
each fairly uniform inside with fine, low-contrast, directional texture
(tramlines, stripes of swaths, tillage streaks) and smooth variation (soil,
moisture), while natural covers (wetland, scrub, natural forest edges) have
irregular outlines. The mosaic is a vectorised binary space partition:
every level cuts every large region by one line in parallel, oriented by
its cadastral domain (narrow strip fields, as in southern Poland, or
blocks), in slightly warped coordinates so that boundaries bend gently;
through roads, railways and rivers cut it first, as they do on the ground.

Everything a date changes is kept separate: :class:`Units` holds one row per
parcel/zone (cover, crop calendar, spectra, texture parameters), and
:class:`Surface` the static per-pixel fields; the renderer combines them for
any date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .geometry import boundary_distance, gaussian_fft, noise_1d
from .phenology import CALENDAR_IDS
from .spectra import sample
from .terrain import Curve, Water
from .towns import fractal_noise

__all__ = [
    "COVER", "COVER_NAMES", "FOREST_COVERS", "Archetype", "ARCHETYPES", "Units", "Partition", "partition",
    "assign_cover", "natural_zones", "Surface", "surface", "pick_archetype", "forest_propensity", "near_field",
    "expected_count",
]

#: Land-cover codes of the visible top layer (``extra['_land_cover']``).
COVER: Dict[str, int] = {
    "arable": 1,
    "grassland": 2,
    "scrub": 3,
    "forest_deciduous": 4,
    "forest_coniferous": 5,
    "wetland": 6,
    "water": 7,
    "bare": 8,
    "garden": 9,
    "paved": 10,
    "road": 11,
    "railway": 12,
    "building": 13,
    "orchard": 14,
    "clearcut": 15,
    "forest_mixed": 16,
    "tree": 17,  # a tree outside forests (hedgerow, alley, garden, riparian)
    "shrub": 18,  # a bush of scrub
}
COVER_NAMES = {v: k for k, v in COVER.items()}
FOREST_COVERS = (COVER["forest_deciduous"], COVER["forest_coniferous"], COVER["forest_mixed"])


@dataclass(frozen=True)
class Archetype:
    """The character of a scene: shares of covers, relief, water, and the cadastral style."""

    name: str
    weight: float
    relief_m: Tuple[float, float]
    forest: Tuple[float, float]
    grass: Tuple[float, float]
    wetland: Tuple[float, float]
    scrub: Tuple[float, float]
    lakes: float  # expected number of lakes
    ponds: float  # expected number of ponds
    river: float  # probability of a river
    strips: float  # probability that a cadastral domain is strip fields
    parcel_m: Tuple[float, float]  # side of a typical block parcel (m)
    natural_edges: float  # share of forest drawn with irregular (natural) outlines


ARCHETYPES: Tuple[Archetype, ...] = (
    Archetype("arable_plain", 0.24, (3, 15), (0.03, 0.15), (0.05, 0.15), (0.0, 0.03), (0.0, 0.03), 0.15, 1.5, 0.35, 0.3, (150, 450), 0.2),
    Archetype("strip_mosaic", 0.22, (6, 40), (0.05, 0.25), (0.08, 0.2), (0.0, 0.05), (0.02, 0.08), 0.1, 1.0, 0.4, 0.9, (80, 300), 0.3),
    Archetype("forest_mosaic", 0.20, (15, 80), (0.3, 0.55), (0.08, 0.2), (0.0, 0.05), (0.02, 0.08), 0.25, 0.8, 0.4, 0.35, (90, 350), 0.5),
    Archetype("forest", 0.10, (10, 90), (0.65, 0.9), (0.03, 0.1), (0.0, 0.08), (0.01, 0.05), 0.3, 0.5, 0.3, 0.2, (90, 300), 0.7),
    Archetype("lakeland", 0.13, (5, 30), (0.15, 0.4), (0.1, 0.25), (0.04, 0.14), (0.02, 0.07), 1.2, 2.5, 0.25, 0.2, (90, 350), 0.6),
    Archetype("hill_pasture", 0.11, (40, 150), (0.15, 0.35), (0.35, 0.6), (0.0, 0.04), (0.05, 0.14), 0.1, 0.5, 0.6, 0.2, (70, 250), 0.6),
)


@dataclass
class Units:
    """One row per unit (parcel, stand, natural zone, garden): what it is and how it looks."""

    cover: np.ndarray  # int16 COVER code of the ground (before trees and objects)
    calendar: np.ndarray  # int16 CALENDAR_IDS
    shift: np.ndarray  # days
    amp: np.ndarray  # green peak factor
    cuts: np.ndarray  # [U, 3] mowing days, NaN = none
    spec: np.ndarray  # [U, 4 end-members (green, dry, flower, soil), 4 bands]
    theta: np.ndarray  # texture direction (rad)
    tram_period: np.ndarray  # px, 0 = no tramlines
    tram_strength: np.ndarray
    streak_amp: np.ndarray  # fine directional streaks
    vig_amp: np.ndarray  # smooth within-parcel vigour variation
    headland: np.ndarray  # px
    stand: np.ndarray  # int8 0 none, 1 deciduous, 2 conifer, 3 mixed
    stand_height: np.ndarray  # m
    stand_spacing: np.ndarray  # px between crowns
    scrub: np.ndarray  # density of bushes 0..1
    balk: np.ndarray  # bool: grass strip on its boundary
    hedge: np.ndarray  # bool: hedgerow on its boundary

    @property
    def size(self) -> int:
        return int(self.cover.shape[0])

    @classmethod
    def empty(cls, u: int) -> Units:
        f = lambda v=0.0: np.full(u, v, np.float32)  # noqa: E731
        return cls(
            cover=np.full(u, COVER["arable"], np.int16), calendar=np.zeros(u, np.int16), shift=f(), amp=f(1.0),
            cuts=np.full((u, 3), np.nan, np.float32), spec=np.zeros((u, 4, 4), np.float32), theta=f(),
            tram_period=f(), tram_strength=f(), streak_amp=f(), vig_amp=f(0.05), headland=f(),
            stand=np.zeros(u, np.int8), stand_height=f(), stand_spacing=f(2.0), scrub=f(), balk=np.zeros(u, bool),
            hedge=np.zeros(u, bool),
        )

    def extend(self, k: int) -> np.ndarray:
        """Append ``k`` default rows (spectra copied from row 0, so no end-member is ever black); return their ids."""
        more = Units.empty(k)
        if self.size:
            more.spec[:] = self.spec[0]
        start = self.size
        for name in self.__dataclass_fields__:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(more, name)]))
        return np.arange(start, start + k)


@dataclass
class Partition:
    """The parcel mosaic: labels per pixel, the domain and block of each label, and long cut lines."""

    labels: np.ndarray  # int32 [H, W]
    domain: np.ndarray  # [U] domain id of each label
    block: np.ndarray  # [U] block id of each label (blocks: the coarse level, forest or open land)
    forest_block: np.ndarray  # [U] bool: the label lies in a forest block
    domain_theta: np.ndarray  # [D] main direction of each domain (rad)
    domain_strips: np.ndarray  # [D] bool
    cuts: List[np.ndarray] = field(default_factory=list)  # (y, x) pixel lists along block boundaries


def _compact(lab: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    present = np.bincount(lab.ravel(), minlength=k) > 0
    mapping = np.cumsum(present) - 1
    return mapping[lab].astype(np.int32), np.where(present, mapping, -1)


@dataclass
class _Style:
    """How to cut each starting region (arrays indexed by starting region)."""

    theta: np.ndarray
    strips: np.ndarray
    area: np.ndarray  # target parcel area (px^2) for blocks
    strip_w: np.ndarray  # px
    strip_len: np.ndarray  # px


def _bsp(
    lab: np.ndarray, style: _Style, rng: np.random.Generator, py: np.ndarray, px: np.ndarray, levels: int,
    record: int = 0, min_len: float = 0.0,
) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]:
    """Split every region whose style asks for it by one line per level, all regions at once.

    Returns (labels, start region of every label, pixel lines of the cuts of the first ``record`` levels).
    """
    k = int(lab.max()) + 1
    src = np.arange(k)
    flat_y, flat_x = py.ravel().astype(np.float64), px.ravel().astype(np.float64)
    lines: List[np.ndarray] = []
    for level in range(levels):
        flat = lab.ravel()
        cnt = np.bincount(flat, minlength=k).astype(np.float64)
        safe = np.maximum(cnt, 1)
        my = np.bincount(flat, flat_y, k) / safe
        mx = np.bincount(flat, flat_x, k) / safe
        cyy = np.bincount(flat, flat_y * flat_y, k) / safe - my * my
        cxx = np.bincount(flat, flat_x * flat_x, k) / safe - mx * mx
        cxy = np.bincount(flat, flat_x * flat_y, k) / safe - mx * my
        th = style.theta[src]
        c2, s2, cs = np.cos(th) ** 2, np.sin(th) ** 2, np.cos(th) * np.sin(th)
        ext_along = np.sqrt(12 * np.maximum(cxx * c2 + cyy * s2 + 2 * cxy * cs, 0))
        ext_across = np.sqrt(12 * np.maximum(cxx * s2 + cyy * c2 - 2 * cxy * cs, 0))
        major = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
        jitter = rng.uniform(0.75, 1.35, k)
        strip = style.strips[src]
        split_strip = strip & (ext_across > style.strip_w[src] * 1.6 * jitter)
        split_long = strip & ~split_strip & (ext_along > style.strip_len[src] * jitter) & (rng.random(k) < 0.8)
        split_block = ~strip & (cnt > style.area[src] * jitter)
        split = (split_strip | split_long | split_block) & (cnt > 60)
        if not split.any():
            break
        # the normal of the cut: across strips, along strips, or across the longer axis snapped to the domain
        cand = np.stack([th, th + np.pi / 2], 1)
        diff = np.abs(((cand - major[:, None]) + np.pi / 2) % np.pi - np.pi / 2)
        snapped = cand[np.arange(k), np.argmin(diff, 1)]
        block_ang = np.where(rng.random(k) < 0.7, snapped, major) + rng.normal(0, 0.06, k)
        ang = np.where(split_strip, th + np.pi / 2, th) + rng.normal(0, 0.025, k)
        ang = np.where(split_block, block_ang, ang)
        nx, ny = np.cos(ang), np.sin(ang)
        ext = np.where(split_strip, ext_across, np.where(split_long, ext_along, np.sqrt(6 * (cxx + cyy))))
        off = np.where(split_strip, rng.uniform(-0.3, 0.3, k), rng.uniform(-0.22, 0.22, k)) * ext
        sd = (px - mx[lab]) * nx[lab] + (py - my[lab]) * ny[lab] - off[lab]
        if level < record:
            near = split[lab] & (np.abs(sd) < 0.71)
            ys_all, xs_all = np.nonzero(near)
            owner = lab[ys_all, xs_all]
            for r in np.unique(owner):
                sel = owner == r
                if sel.sum() >= min_len:
                    ys, xs = ys_all[sel], xs_all[sel]
                    order = np.argsort(xs * -ny[r] + ys * nx[r])
                    lines.append(np.stack([ys[order], xs[order]], 1).astype(np.float32) + 0.5)
        new = lab * 2 + (split[lab] & (sd > 0)).astype(np.int32)
        lab, mapping = _compact(new, 2 * k)
        k_new = int(lab.max()) + 1
        src_new = np.zeros(k_new, np.int64)
        ok = mapping >= 0
        src_new[mapping[ok]] = src[np.arange(2 * k)[ok] // 2]
        src, k = src_new, k_new
    return lab, src, lines


def partition(
    n: int, rng: np.random.Generator, curves: Sequence[Curve], arch: Archetype, pixel_m: float,
    forest_field: np.ndarray,
) -> Partition:
    """Cut the scene into blocks, choose forest blocks, then cut blocks into parcels or compartments.

    Two levels, as land is organised: blocks of 250-600 m between roads,
    streams and field tracks are forest or farmland as a whole; farmland blocks
    are then cut into fields (strips or rectangles, by the domain's style) and
    forest blocks into compartments of 100-300 m.
    """
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    d = int(rng.integers(1, 4))
    seeds = rng.uniform(-0.1, 1.1, (d, 2)) * n
    wy = 0.12 * n * fractal_noise((n, n), 3.5, rng)
    wx = 0.12 * n * fractal_noise((n, n), 3.5, rng)
    dist = np.stack([(yy + wy - sy) ** 2 + (xx + wx - sx) ** 2 for sy, sx in seeds])
    dom_px = np.argmin(dist, axis=0).astype(np.int32)
    dom_theta = (rng.uniform(0, np.pi) + rng.normal(0, 0.35, d)) % np.pi
    dom_strips = rng.random(d) < arch.strips
    lab = dom_px.copy()
    for curve in curves:
        lab = lab * 2 + curve.side(yy, xx)
    lab, _ = _compact(lab, int(lab.max()) + 1)
    k = int(lab.max()) + 1
    dom = np.zeros(k, np.int32)
    np.maximum.at(dom, lab.ravel(), dom_px.ravel())
    amp = rng.uniform(0.5, 3.5)  # gentle bends of the cut lines
    py = yy + amp * fractal_noise((n, n), 4.0, rng)
    px = xx + amp * fractal_noise((n, n), 4.0, rng)
    # level 1: blocks
    block_area = (rng.uniform(250.0, 600.0, k) / pixel_m) ** 2
    style = _Style(dom_theta[dom], np.zeros(k, bool), block_area, np.ones(k), np.ones(k))
    blocks, src, cuts = _bsp(lab, style, rng, py, px, levels=8, record=8, min_len=0.2 * n)
    b_dom = dom[src]
    nb = int(blocks.max()) + 1
    area = np.bincount(blocks.ravel(), minlength=nb).astype(np.float64)
    score = np.bincount(blocks.ravel(), forest_field.ravel(), nb) / np.maximum(area, 1)
    forest_b = _choose_by_field(score + rng.normal(0, 0.15, nb), area, rng.uniform(*arch.forest), area > 0)
    # level 2: parcels in farmland blocks, compartments in forest blocks
    strips_b = dom_strips[b_dom] & ~forest_b
    theta_b = dom_theta[b_dom] + rng.normal(0, 0.04, nb)
    parcel_area = np.where(forest_b, (rng.uniform(110.0, 280.0, nb) / pixel_m) ** 2,
                           (rng.uniform(*arch.parcel_m, nb) / pixel_m) ** 2)
    strip_w = rng.uniform(15.0, 60.0, nb) / pixel_m
    strip_len = rng.uniform(200.0, 600.0, nb) / pixel_m
    style2 = _Style(theta_b, strips_b, parcel_area, strip_w, strip_len)
    labels, src2, _ = _bsp(blocks, style2, rng, py, px, levels=14)
    return Partition(labels, b_dom[src2], src2, forest_b[src2], dom_theta, dom_strips, cuts)


# ---------------------------------------------------------------------- cover per unit
def _choose_by_field(score: np.ndarray, area: np.ndarray, share: float, free: np.ndarray) -> np.ndarray:
    """Units with the highest ``score`` among ``free`` until their area reaches ``share`` of the total."""
    chosen = np.zeros(score.shape, bool)
    if share <= 0:
        return chosen
    total = area.sum()
    order = np.argsort(-np.where(free, score, -np.inf))
    acc = np.cumsum(area[order])
    k = int(np.searchsorted(acc, share * total)) + 1
    chosen[order[:k]] = True
    return chosen & free


def forest_propensity(n: int, rng: np.random.Generator, dem: np.ndarray, pixel_m: float) -> np.ndarray:
    """Where forest stays in farmland: a smooth random field, higher on slopes and high ground."""
    slope = np.hypot(*np.gradient(dem, pixel_m))
    return (fractal_noise((n, n), 3.3, rng) + 0.6 * slope / (slope.std() + 1e-6) + 0.3 * dem / (dem.std() + 1e-6)).astype(np.float32)


def assign_cover(
    units: Units, part: Partition, rng: np.random.Generator, arch: Archetype, dem: np.ndarray,
    near_water: np.ndarray, pixel_m: float,
) -> None:
    """Decide what every parcel is (crop, meadow, forest stand, scrub...) and how it looks."""
    lab = part.labels
    u = units.size
    flat = lab.ravel()
    area = np.bincount(flat, minlength=u).astype(np.float64)
    safe = np.maximum(area, 1)
    n = lab.shape[0]
    wet_field = -dem / (dem.std() + 1e-6) + 1.2 * near_water
    w_score = np.bincount(flat, wet_field.ravel(), u) / safe
    free = area > 0
    forest = part.forest_block & free
    grass = _choose_by_field(w_score + rng.normal(0, 0.6, u), area, rng.uniform(*arch.grass), free & ~forest)
    scrub = _choose_by_field(rng.random(u), area, rng.uniform(*arch.scrub), free & ~forest & ~grass)
    arable = free & ~forest & ~grass & ~scrub
    # texture direction: along each parcel's long axis (tramlines and swaths follow the long side)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    my, mx = np.bincount(flat, yy.ravel(), u) / safe, np.bincount(flat, xx.ravel(), u) / safe
    cyy = np.bincount(flat, (yy * yy).ravel(), u) / safe - my * my
    cxx = np.bincount(flat, (xx * xx).ravel(), u) / safe - mx * mx
    cxy = np.bincount(flat, (xx * yy).ravel(), u) / safe - mx * my
    major = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
    units.theta[:] = np.where(rng.random(u) < 0.85, major, major + np.pi / 2) + rng.normal(0, 0.03, u)
    units.shift[:] = rng.normal(0, 7, u)
    units.amp[:] = np.clip(rng.normal(1.0, 0.07, u), 0.75, 1.12)
    units.vig_amp[:] = rng.uniform(0.03, 0.12, u)
    soil_kind = rng.choice(["soil_loam", "soil_sand", "soil_dark", "soil_loess"], p=[0.45, 0.2, 0.15, 0.2])
    units.spec[:, 3] = sample(str(soil_kind), u, rng, 0.6)
    # arable crops
    crops = ["winter_cereal", "spring_cereal", "maize", "rapeseed", "root_crop", "bare", "fallow"]
    crop_p = np.array([0.36, 0.16, 0.17, 0.1, 0.08, 0.05, 0.08])
    ids = np.flatnonzero(arable)
    pick = rng.choice(len(crops), size=ids.size, p=crop_p)
    units.calendar[ids] = [CALENDAR_IDS[crops[i]] for i in pick]
    units.cover[ids] = COVER["arable"]
    units.spec[ids, 0] = sample("crop_green", ids.size, rng)
    units.spec[ids, 1] = sample("straw", ids.size, rng)
    units.spec[ids, 2] = sample("rape_flower", ids.size, rng)
    cereal = np.isin(units.calendar[ids], [CALENDAR_IDS[c] for c in ("winter_cereal", "spring_cereal", "rapeseed")])
    units.tram_period[ids] = np.where(cereal, rng.choice([12.0, 15.0, 18.0, 20.0, 24.0, 27.0], ids.size) / pixel_m, 0.0)
    units.tram_strength[ids] = rng.uniform(0.15, 0.4, ids.size)
    units.streak_amp[ids] = rng.uniform(0.02, 0.07, ids.size)
    units.headland[ids] = rng.uniform(6.0, 20.0, ids.size) / pixel_m * (rng.random(ids.size) < 0.8)
    orchard = ids[rng.random(ids.size) < 0.02]
    units.cover[orchard] = COVER["orchard"]
    units.calendar[orchard] = CALENDAR_IDS["pasture"]
    units.tram_period[orchard] = 0.0
    # grassland: meadows (mown) and pastures
    ids = np.flatnonzero(grass)
    meadow = rng.random(ids.size) < 0.55
    units.cover[ids] = COVER["grassland"]
    units.calendar[ids] = np.where(meadow, CALENDAR_IDS["meadow"], CALENDAR_IDS["pasture"])
    units.spec[ids, 0] = sample("grass_green", ids.size, rng)
    units.spec[ids, 1] = sample("hay", ids.size, rng)
    first = rng.uniform(140, 165, ids.size)
    cuts = np.stack([first, first + rng.uniform(35, 55, ids.size), first + rng.uniform(80, 110, ids.size)], 1)
    cuts[:, 2] = np.where(rng.random(ids.size) < 0.5, cuts[:, 2], np.nan)
    units.cuts[ids] = np.where(meadow[:, None], cuts, np.nan)
    units.streak_amp[ids] = np.where(meadow, rng.uniform(0.03, 0.08, ids.size), 0.0)
    units.vig_amp[ids] = rng.uniform(0.06, 0.16, ids.size)
    # scrub: abandoned land with bushes
    ids = np.flatnonzero(scrub)
    units.cover[ids] = COVER["scrub"]
    units.calendar[ids] = CALENDAR_IDS["fallow"]
    units.spec[ids, 0] = sample("grass_green", ids.size, rng)
    units.spec[ids, 1] = sample("hay", ids.size, rng)
    units.scrub[ids] = rng.uniform(0.25, 0.75, ids.size)
    units.vig_amp[ids] = rng.uniform(0.1, 0.2, ids.size)
    # forest stands (compartments): type, age -> height, crown spacing; some clear-cuts and young plantations
    ids = np.flatnonzero(forest)
    conifer_share = rng.uniform(0.2, 0.8)
    kind = rng.choice(3, size=ids.size, p=[(1 - conifer_share) * 0.75, conifer_share * 0.75, 0.25]) + 1
    units.stand[ids] = kind
    units.cover[ids] = np.array([0, COVER["forest_deciduous"], COVER["forest_coniferous"], COVER["forest_mixed"]])[kind]
    units.calendar[ids] = CALENDAR_IDS["forest_floor"]
    units.spec[ids, 0] = sample("understory", ids.size, rng)
    units.spec[ids, 1] = sample("straw", ids.size, rng, 0.5) * 0.6
    age = rng.uniform(0, 1, ids.size)
    units.stand_height[ids] = 4.0 + 26.0 * age ** 0.7
    crown_m = np.where(kind == 2, 2.5 + 4.0 * age, 3.0 + 7.0 * age)  # crown diameter
    units.stand_spacing[ids] = crown_m / pixel_m * rng.uniform(0.8, 1.0, ids.size)
    cut = ids[rng.random(ids.size) < 0.06]
    units.stand[cut] = 0
    units.cover[cut] = COVER["clearcut"]
    units.calendar[cut] = CALENDAR_IDS["clearcut"]
    units.spec[cut, 0] = sample("grass_green", cut.size, rng)
    units.spec[cut, 1] = sample("straw", cut.size, rng)
    units.scrub[cut] = rng.uniform(0.0, 0.3, cut.size)
    # boundaries: balks between strips, hedgerows on some parcels
    strip_unit = part.domain_strips[part.domain]
    units.balk[:] = (units.cover == COVER["arable"]) & (rng.random(u) < np.where(strip_unit, 0.5, 0.15))
    hedgy = rng.uniform(0.0, 0.3)
    units.hedge[:] = np.isin(units.cover, [COVER["arable"], COVER["grassland"]]) & (rng.random(u) < hedgy)


def natural_zones(
    units: Units, part: Partition, rng: np.random.Generator, arch: Archetype, dem: np.ndarray, water: Water,
) -> np.ndarray:
    """Covers with natural outlines, drawn per pixel over the parcels; returns the reed mask.

    Wetland (reed, sedge, bog) takes the wettest low ground near water;
    reeds also stand in the shallow water of lakes (a patchy belt that hides
    the water); some forest edges bulge into meadows and scrub instead of
    following parcel lines; and pastures next to forest get a scrub fringe.
    """
    lab = part.labels
    n = lab.shape[0]
    near_water = gaussian_fft(np.maximum(water.alpha(0.0), (water.river_dist < 3).astype(np.float32)), 10.0) * 2.5
    open_water = water.alpha(0.0) > 0.5
    # reed belts in shallow lake water and on the wet shore
    # reeds grow from the shore out to a depth that varies smoothly along it: a belt of varying width, with gaps
    patch = fractal_noise((n, n), 3.2, rng)
    reed_depth = rng.uniform(0.2, 1.0) * np.clip(1.0 + 0.8 * patch, 0.0, None)
    reed = (water.lake_depth > -0.3) & (water.lake_depth < reed_depth) & (patch > rng.uniform(-1.0, 0.0))
    # wetland: the wettest share of the land
    share = rng.uniform(*arch.wetland)
    wet_score = -dem / (dem.std() + 1e-6) + near_water + 1.1 * fractal_noise((n, n), 3.0, rng)
    land = ~open_water
    wet = np.zeros((n, n), bool)
    if share > 0 and land.any():
        thr = np.quantile(wet_score[land], 1.0 - share)
        wet = land & (wet_score > thr)
    kinds = ["reed", "sedge", "bog_moss"]
    ids = units.extend(3)
    for uid, kind in zip(ids, kinds):
        units.cover[uid] = COVER["wetland"]
        units.calendar[uid] = CALENDAR_IDS["wetland"]
        units.spec[uid, 0] = sample(kind, 1, rng)[0]
        units.spec[uid, 1] = sample("reed_dry", 1, rng)[0]
        units.spec[uid, 3] = sample("mud", 1, rng)[0]
        units.vig_amp[uid] = rng.uniform(0.12, 0.25)
        units.scrub[uid] = rng.uniform(0.0, 0.15) if kind == "bog_moss" else rng.uniform(0.0, 0.06)
        units.theta[uid] = rng.uniform(0, np.pi)
    # raised bog (moss, dwarf shrubs, pines) belongs to forest and lake districts; elsewhere wet land is sedge meadow
    bog_share = 0.5 if arch.name in ("forest", "lakeland", "forest_mosaic") else 0.1
    which = np.where(fractal_noise((n, n), 3.0, rng) > np.quantile(patch, bog_share), ids[1], ids[2])
    lab[wet] = which[wet]
    lab[reed | (wet & (near_water > 0.8) & (patch > 0.3))] = ids[0]
    # natural forest edges: the forest outline smoothed, then cut by noise
    forest = np.isin(units.cover[lab], FOREST_COVERS)
    if forest.any() and rng.random() < arch.natural_edges:
        soft = gaussian_fft(forest.astype(np.float32), rng.uniform(3.0, 7.0))
        edge = soft + 0.22 * fractal_noise((n, n), 2.4, rng)
        cover = units.cover[lab]
        soft_ground = np.isin(cover, [COVER["grassland"], COVER["scrub"], COVER["wetland"]])
        grow = ~forest & soft_ground & (edge > 0.5) & ~open_water
        shrink = forest & (edge < 0.5) & (soft < 0.9)
        ids = units.extend(2)
        units.cover[ids[0]] = COVER["forest_deciduous"]
        units.stand[ids[0]] = 1
        units.calendar[ids[0]] = CALENDAR_IDS["forest_floor"]
        units.spec[ids[0], 0] = sample("understory", 1, rng)[0]
        units.stand_height[ids[0]] = rng.uniform(10, 22)
        units.stand_spacing[ids[0]] = rng.uniform(1.6, 2.6)
        units.cover[ids[1]] = COVER["scrub"]
        units.calendar[ids[1]] = CALENDAR_IDS["fallow"]
        units.spec[ids[1], 0] = sample("grass_green", 1, rng)[0]
        units.spec[ids[1], 1] = sample("hay", 1, rng)[0]
        units.spec[ids[1], 3] = units.spec[0, 3]
        units.scrub[ids[1]] = rng.uniform(0.3, 0.6)
        units.vig_amp[ids[1]] = 0.15
        lab[grow] = ids[0]
        lab[shrink] = ids[1]
    return reed


# ---------------------------------------------------------------------- per-pixel surface
@dataclass
class Surface:
    """Static per-pixel layers the renderer mixes for a date."""

    endmembers: np.ndarray  # [4 end-members, 4 bands, H, W]: green, dry, flower, soil
    vigour: np.ndarray  # [H, W] multiplicative on the green fraction (1 +- a few %)
    tram: np.ndarray  # [H, W] 0..1 tramline coverage (scaled by the unit's strength)
    streak: np.ndarray  # [H, W] fine directional texture, zero-mean
    balk: np.ndarray  # [H, W] 0..1 share of a grass strip in the pixel
    wet: np.ndarray  # [H, W] soil darkening by moisture 0..1
    edge: np.ndarray  # [H, W] bool: pixels on a unit boundary (softened as mixed pixels)


def surface(units: Units, labels: np.ndarray, rng: np.random.Generator, dem: np.ndarray, pixel_m: float) -> Surface:
    """Per-pixel end-members and textures of the ground (see :class:`Surface`)."""
    n = labels.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    spec = units.spec[labels]  # [H, W, 4, 4]
    endm = np.ascontiguousarray(np.moveaxis(spec, (0, 1), (2, 3)))  # [4, 4, H, W]
    # soil: brightness varies with texture and erosion (convex knolls lose dark topsoil, hollows are wetter)
    lap = (np.roll(dem, 1, 0) + np.roll(dem, -1, 0) + np.roll(dem, 1, 1) + np.roll(dem, -1, 1) - 4 * dem)
    lap = lap / (lap.std() + 1e-6)
    soil_var = 0.10 * fractal_noise((n, n), 2.8, rng) - 0.03 * np.clip(lap, -3, 3)
    wet = np.clip(0.25 * fractal_noise((n, n), 3.2, rng) + 0.06 * np.clip(lap, -3, 3), 0, 1)
    endm[3] *= (1.0 + soil_var)[None] * (1.0 - 0.45 * wet)[None]
    # within-parcel vigour: smooth 1/f field, plus a little pixel-scale roughness
    vig = fractal_noise((n, n), 2.9, rng) + 0.25 * fractal_noise((n, n), 1.6, rng)
    vigour = 1.0 + units.vig_amp[labels] * vig
    # directional textures: coordinate across the tillage/sowing direction of each unit
    th = units.theta[labels]
    dist_b = boundary_distance(labels, 8)
    head = dist_b < units.headland[labels]
    th = np.where(head, th + np.pi / 2, th)
    v = xx * -np.sin(th) + yy * np.cos(th)
    period = units.tram_period[labels]
    phase = (units.shift[labels] * 0.37) % 1.0
    q = np.where(period > 0, (v / np.maximum(period, 1e-3) + phase) % 1.0, 0.5)
    dline = np.minimum(q, 1 - q) * period
    tram = np.where((period > 0) & ~head, np.clip(1.0 - dline / 0.8, 0, 1), 0.0) * units.tram_strength[labels]
    line = noise_1d(8192, 1.2, rng)
    offs = (labels.astype(np.float32) * 97.0) % 4096.0
    streak = np.interp((v * 1.0 + offs) % 8191.0, np.arange(8192), line).astype(np.float32)
    streak = streak * units.streak_amp[labels] * (1.0 + 0.3 * vig)
    # balks: a grass strip of about a metre on the boundaries of units that have one
    balk_u = units.balk[labels]
    balk = np.where(balk_u & (dist_b < 1.0), rng.uniform(0.3, 0.6), 0.0).astype(np.float32)
    return Surface(endm.astype(np.float32), vigour.astype(np.float32), tram.astype(np.float32), streak, balk,
                   wet.astype(np.float32), dist_b < 1.0)


def near_field(dist_px: np.ndarray, scale_px: float) -> np.ndarray:
    """exp(-d / scale): 1 on a feature, fading away from it (finite everywhere)."""
    d = np.where(np.isfinite(dist_px), dist_px, 1e6)
    return np.exp(-d / scale_px).astype(np.float32)


def pick_archetype(rng: np.random.Generator) -> Archetype:
    """One archetype, drawn by the weights of :data:`ARCHETYPES`."""
    w = np.array([a.weight for a in ARCHETYPES])
    return ARCHETYPES[int(rng.choice(len(ARCHETYPES), p=w / w.sum()))]


def expected_count(rng: np.random.Generator, mean: float) -> int:
    """A Poisson count (lakes, ponds) with the archetype's mean."""
    return int(rng.poisson(mean)) if mean > 0 else 0

