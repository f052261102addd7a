"""Synthetic world v2: rural land in B02, B03, B04, B08, with settlements, roads and exact OSM-like masks.

Why: the v1 towns (:mod:`.towns`) are grids of streets in one NIR band, and
networks trained only on them stamp towns onto real fields and forests. This
world is mostly *not* town: parcels of crops, meadows, scrub, forest
compartments, wetland, lakes and rivers on rolling terrain, with farmsteads,
hamlets, linear villages and now and then a small town, joined by curved
roads and tracks. At least ``min_object_free`` (default half) of every scene
lies farther than ``object_free_margin_px`` from any building or road, and a
share of scenes hold no object at all.

How a scene is built (modules beside this one):

1. :mod:`.terrain`: DEM (1/f noise), river with wandering banks, lakes and ponds as
   level sets of smooth random basins.
2. :mod:`.settlements` through :mod:`.objects`' planner: through roads (and a rare
   motorway, a railway) as smooth curves; they and the river cut the parcel mosaic.
3. :mod:`.land`: parcels by a vectorised binary space partition; cover per
   parcel (crop and calendar, meadow, forest stand, scrub), natural zones
   (wetland, reed belts, irregular forest edges), per-pixel textures.
4. :mod:`.settlements` again: villages, hamlets, towns, farmsteads, field and
   forest tracks, each accepted only within the object-free budget.
5. :mod:`.canopy`: crowns of forests, scrub, hedgerows, alleys, gardens, banks.
6. :mod:`.render`: the HR image on its date (phenology, water level, sun,
   shading, cast shadows), a light optical blur and sensor noise.
7. LR revisits: *simulated* (default): :func:`core.data.degrade.simulate_frames`
   with each band's PSF, random sub-pixel shifts and noise, all from the HR
   image; *real-world-like* (:mod:`.revisits`): every revisit rendered on its own date (crops,
   mowing, leaves, lake level, sun), degraded with the same operator after a
   misregistration, then per-date gain/offset, haze stronger in blue, and
   clouds with their shadows, masked as an L2A scene classification would
   (thick parts masked, thin edges not).

Georeferencing follows the v1 towns: UTM 34N (EPSG:32634), HR pixel 10/3 m,
LR pixel 10 m, origins on the 10 m grid (here anywhere in rural southern and
central Poland). Everything is vectorised numpy plus the torch degradation.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from affine import Affine

from ...jobs import Progress
from ..degrade import sigma_for_bands, simulate_frames
from ..scene import Scene, make_split, write_scene
from . import canopy as cn
from . import land as ld
from . import settlements as st
from .geometry import blur3, boundary_distance, dilate_disk
from .objects import Planner
from .render import World, render, sun_position
from .revisits import real_world_frames, revisit_days
from .spectra import BANDS, sample
from .terrain import make_dem, make_water
from .towns import HR_PIXEL_M, SYNTH_CRS, fractal_noise

__all__ = [
    "WorldParams",
    "make_world_scene",
    "make_world_dataset",
    "object_free_mask",
    "OBJECT_FREE_MARGIN_PX",
    "BANDS",
]

#: "Object-free": farther than this many HR pixels (about 17 m) from any building or road pixel.
OBJECT_FREE_MARGIN_PX = 5.0
# Origins (UTM 34N): rural southern and central Poland; snapped to the 10 m grid.
_ORIGIN_X = (350_000.0, 650_000.0)
_ORIGIN_Y = (5_450_000.0, 5_900_000.0)


@dataclass
class WorldParams:
    """Knobs of world v2 (defaults: the documented behaviour)."""

    object_free_margin_px: float = OBJECT_FREE_MARGIN_PX
    min_object_free: float = 0.5  # share of every scene that stays object-free
    object_free_probability: float = 0.2  # chance of a scene without objects when not told
    settlement_density: float = 1.0  # scales the expected number of settlements and tracks
    archetype: Optional[str] = None  # force one of land.ARCHETYPES by name
    max_shift_lr: float = 1.0  # simulated revisits: uniform shifts within +- this (LR px)
    misregistration_lr: float = 0.3  # real-world revisits: sd of the shift (LR px), clipped at 1
    cloud_probability: float = 0.35  # real-world revisits: chance of clouds per date
    date_spread_days: int = 60  # real-world revisits: dates within +- this of the HR date
    hr_blur_sigma: float = 0.35  # optical blur of the HR image (HR px)
    hr_noise: float = 0.0015  # HR sensor noise (reflectance)


# ---------------------------------------------------------------------- scene
def _seed_parts(seed: Union[int, Sequence[int]]) -> List[int]:
    return [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]


def _build_world(n: int, rng: np.random.Generator, object_free: bool, p: WorldParams) -> Tuple[World, Planner, ld.Archetype]:
    """All static layers of one scene, in the order of the module docstring (steps 1-5)."""
    px = HR_PIXEL_M
    arch = next((a for a in ld.ARCHETYPES if a.name == p.archetype), None) if p.archetype else ld.pick_archetype(rng)
    if p.archetype and arch is None:
        raise ValueError(f"unknown archetype {p.archetype!r}; choose one of {[a.name for a in ld.ARCHETYPES]}")
    scale = (n * px / 1000.0) ** 2 / 1.64  # scene area relative to a 384 px scene
    dem = make_dem(n, rng, rng.uniform(*arch.relief_m))
    water, dem = make_water(
        n, rng, dem, rivers=int(rng.random() < arch.river), lakes=ld.expected_count(rng, arch.lakes * scale),
        ponds=ld.expected_count(rng, arch.ponds * scale), lake_size=rng.uniform(0.12, 0.3),
    )
    lake = water.lake_depth > -0.5
    plan = Planner(n, rng, px, p.object_free_margin_px, p.min_object_free, water.alpha(0.0) > 0.3)
    cuts = list(water.rivers)
    dens = p.settlement_density * scale
    if not object_free:
        n_through = int(min(rng.poisson(1.3 * max(scale, 0.3)), 3))
        if arch.name == "forest":
            n_through = min(n_through, 1)
        for curve, kind in st.through_curves(n, rng, n_through, lake):
            if plan.road(curve.points, kind) is not None:
                cuts.append(curve)
        if rng.random() < 0.07 * min(scale, 1.5):  # a motorway: two carriageways and a grass median
            curve = st.through_curves(n, rng, 1, lake)
            if curve:
                c = curve[0][0]
                w = rng.uniform(10.5, 12.0) / px
                gap = w / 2 + rng.uniform(3.0, 4.5) / px / 2
                for off in (-gap, gap):
                    plan.road(c.offset(off).points, "motorway", width_m=w * px, verge=rng.uniform(3, 6))
                cuts.append(c)
        if rng.random() < 0.14 * min(scale, 1.5):  # a railway (not a road): ballast corridor
            curve = st.through_curves(n, rng, 1, lake)
            if curve:
                c = curve[0][0]
                plan.road(c.points, "track", width_m=rng.choice([6.0, 11.0]), surface="ballast", clearing=2.5, rail=True)
                cuts.append(c)
    part = ld.partition(n, rng, cuts, arch, px, ld.forest_propensity(n, rng, dem, px))
    units = ld.Units.empty(int(part.labels.max()) + 1)
    near_water = ld.near_field(np.minimum(water.river_dist, np.where(lake, 0.0, np.inf)), 20.0)
    ld.assign_cover(units, part, rng, arch, dem, near_water, px)
    reed = ld.natural_zones(units, part, rng, arch, dem, water)
    labels = part.labels
    wet = lake | (water.alpha(0.0) > 0.3)  # parcels run on under water; nothing is built or driven there
    forest = np.isin(units.cover[labels], ld.FOREST_COVERS) & ~wet
    if not object_free:
        open_land = np.isin(units.cover[labels], [ld.COVER["arable"], ld.COVER["grassland"]]) & ~wet
        if plan.roads and rng.random() < 0.15 * min(dens, 1.5) + (0.05 if arch.name == "arable_plain" else 0):
            # a town grows on a through road, in open land, not too close to the scene edge
            pts = np.concatenate([r.points for r in plan.roads])
            ij = np.clip(pts.astype(np.int64), 0, n - 1)
            ok = open_land[ij[:, 0], ij[:, 1]] & (pts.min(1) > 0.15 * n) & (pts.max(1) < 0.85 * n)
            if ok.any():
                cand = pts[ok]
                st.town(plan, rng, cand[int(rng.integers(len(cand)))])
        through = list(plan.roads)
        for _ in range(rng.poisson(1.1 * dens)):
            if not through:  # a village brings its own road
                for curve, _kind in st.through_curves(n, rng, 1, lake):
                    r = plan.road(curve.points, "tertiary")
                    through += [r] if r is not None else []
            if through:
                st.village(plan, through[int(rng.integers(len(through)))], rng, linear=rng.random() < 0.7)
        for _ in range(rng.poisson(0.8 * dens)):
            st.hamlet(plan, rng)
        theta = units.theta[labels]
        for _ in range(rng.poisson(2.0 * dens)):
            st.farmstead(plan, rng, open_land, theta)
        st.field_tracks(plan, rng, part.cuts, open_land, int(rng.poisson(1.5 * dens)))
        share_forest = float(forest.mean())
        st.forest_roads(plan, rng, forest, int(rng.poisson(2.5 * share_forest * dens + 0.2)))
        if not plan.roads:  # every scene with objects has at least one road
            for curve, _kind in st.through_curves(n, rng, 1, lake):
                plan.road(curve.points, str(rng.choice(["tertiary", "track"])))
        st.apply_to_land(plan, units, labels, rng)
    # trees: no crown centre on carriageways, buildings, open water; forest roads and rails keep a corridor
    clear = plan.occupied.copy()
    for r in plan.roads + plan.rails:
        if r.clearing > 0:
            clear[r.box] |= r.dist <= r.width / 2 + r.clearing
    clear |= reed
    crowns = plan.crowns
    cn.forest_crowns(crowns, units, labels, clear, rng)
    cn.scrub_crowns(crowns, units, labels, clear, rng)
    dist_b = boundary_distance(labels, 2)
    # hedgerows: continuous lines of merging crowns with a few gaps (not chains of beads)
    gaps = fractal_noise((n, n), 2.8, rng)
    hedge_px = units.hedge[labels] & (dist_b < 1.0) & (gaps > rng.uniform(-1.2, -0.5))
    cn.boundary_crowns(crowns, hedge_px, rng.uniform(0.6, 0.85), rng, (3.0, 12.0), (1, 2), clear)
    if water.rivers:
        bank = (water.river_dist > 0) & (water.river_alpha < 0.05) & (water.river_dist < max(water.river_width) / 2 + 3)
        cn.boundary_crowns(crowns, bank, rng.uniform(0.05, 0.3), rng, (6.0, 20.0), (1, 2, 3), clear)
    lone = np.isin(units.cover[labels], [ld.COVER["grassland"], ld.COVER["arable"]])
    cn.boundary_crowns(crowns, lone, rng.uniform(0.0, 0.0004), rng, (8.0, 22.0), (2, 3), clear)
    orchard = units.cover[labels] == ld.COVER["orchard"]
    if orchard.any():
        yy, xx = plan.yy, plan.xx
        row = ((xx * math.cos(0.3) + yy * math.sin(0.3)) % 1.4 < 0.45) & ((-xx * math.sin(0.3) + yy * math.cos(0.3)) % 1.2 < 0.4)
        cn.boundary_crowns(crowns, orchard & row, 0.9, rng, (3.0, 5.0), (0,), clear)
    canopy = cn.draw_canopy(crowns, n, rng, px)
    surface = ld.surface(units, labels, rng, dem, px)
    objects = plan.draw(rng)
    tree_spec = {
        "deciduous": sample("leaf_deciduous", 1, rng)[0],
        "autumn": sample("autumn_leaf", 1, rng)[0],
        "branches": sample("branches", 1, rng)[0],
        "conifer": sample("leaf_conifer", 1, rng)[0],
        "shrub": sample("shrub", 1, rng)[0],
    }
    grass = np.stack([sample("grass_green", 1, rng)[0], sample("hay", 1, rng)[0]])
    unit_tone = np.exp(0.07 * rng.standard_normal(units.size)).astype(np.float32)
    world = World(n, px, dem, water, reed.astype(np.float32), units, labels, surface, canopy, objects, tree_spec, grass,
                  unit_tone)
    return world, plan, arch


def _doy_date(year: int, doy: float) -> _dt.date:
    return _dt.date(year, 1, 1) + _dt.timedelta(days=int(round(doy)) - 1)


def _hr_image(world: World, doy: float, rng: np.random.Generator, p: WorldParams) -> Tuple[np.ndarray, np.ndarray, Dict[str, float]]:
    """The HR image on ``doy`` (render, mild optical blur, sensor noise), its cover codes and the sun."""
    az, el = sun_position(doy)
    refl, cover = render(world, doy, az, el, level_m=0.0)
    hr = blur3(refl, p.hr_blur_sigma) + p.hr_noise * rng.standard_normal(refl.shape).astype(np.float32)
    return np.clip(hr, 1e-3, 1.0).astype(np.float32), cover, dict(azimuth=round(az, 2), elevation=round(el, 2))


def make_world_scene(
    size_hr: int = 384,
    frames: int = 9,
    seed: Union[int, Sequence[int]] = 0,
    real_world: bool = False,
    name: Optional[str] = None,
    object_free: Optional[bool] = None,
    params: Optional[WorldParams] = None,
) -> Scene:
    """One world v2 scene (HR ``size_hr`` px square, 4 bands), reproducible by ``seed``.

    ``object_free``: True for pure land (empty masks), False for a scene with
    objects, None to let the seed decide (``params.object_free_probability``).
    """
    if size_hr < 48 or size_hr % 3:
        raise ValueError(f"size_hr must be a multiple of 3 and at least 48, got {size_hr}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    p = params or WorldParams()
    parts = _seed_parts(seed)
    rng = np.random.default_rng(np.random.SeedSequence([*parts, 0x57B2]))
    if object_free is None:
        object_free = bool(rng.random() < p.object_free_probability)
    n = size_hr
    world, plan, arch = _build_world(n, rng, object_free, p)
    year = int(rng.integers(2019, 2024))
    hr_doy = float(rng.uniform(130, 250))
    hr, cover, sun = _hr_image(world, hr_doy, rng, p)
    masks = {"buildings": world.objects.buildings.copy(), "roads": world.objects.roads.copy()}

    x0 = _ORIGIN_X[0] + 10.0 * rng.integers(0, int((_ORIGIN_X[1] - _ORIGIN_X[0]) / 10))
    y0 = _ORIGIN_Y[0] + 10.0 * rng.integers(0, int((_ORIGIN_Y[1] - _ORIGIN_Y[0]) / 10))
    hr_transform = Affine(HR_PIXEL_M, 0.0, x0, 0.0, -HR_PIXEL_M, y0)
    lr_transform = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)

    frame_info: List[Dict[str, Any]] = []
    if real_world:
        doys = revisit_days(rng, frames, hr_doy, p.date_spread_days)
        lr, lr_valid, shifts, frame_info = real_world_frames(world, doys, rng, parts, p.misregistration_lr,
                                                             p.cloud_probability)
    else:
        doys = np.sort(hr_doy + rng.choice(np.arange(-30, 31, 5), size=frames, replace=frames > 13))
        lr, lr_valid, shifts = simulate_frames(
            hr, None, frames=frames, seed=(*parts, 1), max_shift_lr=p.max_shift_lr, sigma_hr=sigma_for_bands(BANDS)
        )
    dates = [_doy_date(year, d).isoformat() for d in doys]
    near = ~object_free_mask(masks, p.object_free_margin_px)
    extra: Dict[str, Any] = {
        "synthetic": True,
        "world": "v2",
        "level": "L2A",  # drawn with surface-reflectance spectra: L2A-like, not top of atmosphere
        "version": "real-world" if real_world else "simulated",
        "seed": parts,
        "archetype": arch.name,
        "object_free_scene": bool(object_free),
        "object_free_share": round(float(1.0 - near.mean()), 4),
        "object_free_margin_px": p.object_free_margin_px,
        "hr_date": _doy_date(year, hr_doy).isoformat(),
        "sun": sun,
        "shifts_hr": np.round(shifts, 4).tolist(),
        "n_buildings": len(plan.buildings),
        "n_roads": len(plan.roads),
        "settlements": plan.settlements,
        "land_cover_classes": dict(ld.COVER),
        "land_cover_share": _cover_share(cover),
        "_land_cover": cover,
        "_buildings": plan.building_list(),
        "_roads": plan.road_segments(),
    }
    if frame_info:
        extra["frames"] = frame_info
    return Scene(
        name=name or f"world_{'_'.join(str(s) for s in parts)}",
        lr=lr.astype(np.float32),
        lr_valid=lr_valid,
        hr=hr,
        hr_valid=np.ones(hr.shape[1:], bool),
        masks=masks,
        crs=SYNTH_CRS,
        lr_transform=lr_transform,
        hr_transform=hr_transform,
        bands=list(BANDS),
        scale=3,
        dates=dates,
        radiometric_scale=1e-4,
        split=None,
        extra=extra,
    )


def _cover_share(cover: np.ndarray) -> Dict[str, float]:
    counts = np.bincount(cover.ravel(), minlength=max(ld.COVER.values()) + 1) / cover.size
    return {name: round(float(counts[code]), 4) for name, code in ld.COVER.items() if counts[code] > 0}


def object_free_mask(masks: Dict[str, np.ndarray], margin_px: float = OBJECT_FREE_MARGIN_PX) -> np.ndarray:
    """True where a pixel is farther than ``margin_px`` (Euclidean, centre to centre) from every mask pixel."""
    objects = None
    for key in ("buildings", "roads"):
        if key in masks:
            m = np.asarray(masks[key], bool)
            objects = m if objects is None else objects | m
    if objects is None:
        raise ValueError("no buildings or roads mask given")
    return ~dilate_disk(objects, margin_px)


# ---------------------------------------------------------------------- dataset
def make_world_dataset(
    out_root: Union[str, Path],
    n_scenes: int,
    size_hr: int = 384,
    seed: int = 0,
    real_world: bool = False,
    frames: int = 9,
    object_free_share: float = 0.2,
    progress: Optional[Progress] = None,
    params: Optional[WorldParams] = None,
) -> List[Path]:
    """Write ``n_scenes`` world v2 scene folders under ``out_root`` plus ``split.json``.

    Exactly ``round(object_free_share * n_scenes)`` scenes (chosen by ``seed``) are pure land.
    """
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be >= 1, got {n_scenes}")
    if not 0.0 <= object_free_share <= 1.0:
        raise ValueError(f"object_free_share must be in [0, 1], got {object_free_share}")
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    pick = np.random.default_rng(np.random.SeedSequence([int(seed), 0xF8EE]))
    free = set(pick.choice(n_scenes, size=int(round(object_free_share * n_scenes)), replace=False).tolist())
    paths = []
    for i in range(n_scenes):
        name = f"world_{i:03d}"
        if progress:
            progress(i / n_scenes, f"generating {name}")
        scene = make_world_scene(size_hr, frames, seed=(seed, i), real_world=real_world, name=name,
                                 object_free=i in free, params=params)
        paths.append(write_scene(scene, out_root / name))
    make_split(out_root, seed=seed)
    if progress:
        progress(1.0, f"wrote {n_scenes} scene(s) to {out_root}")
    return paths
