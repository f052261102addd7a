"""Synthetic world v3: cities of the world in B02, B03, B04, B08, with exact building and road masks.

Why: world v2 is rural land with villages; a network trained on it has never
seen a perimeter block, a slum, a tower's shadow, a container terminal or a
runway. World v3 is mostly built: every scene is one *city type* (drawn at
random, recorded in scene.json) placed in a plausible city of the world (its
UTM zone, latitude for the sun, and climate), and still keeps some
object-free land (a park, fields, a river, forested hills) so that networks
see negatives.

How a scene is built (modules beside this one):

1. :mod:`.terrain`: DEM (rolling, or hills with forest beside the town), a river now and then.
2. Free land is reserved first (:func:`_free_layout`): forested hills, an edge of fields
   or scrub, or a central park; nothing is built or driven there.
3. The city type (:mod:`.cities`, :mod:`.districts`, :mod:`.infra`) lays out roads
   (through :class:`.objects.Planner`), buildings and other objects in a
   :class:`.urban.CityPlan`; buildings touching roads, rails, water or free land are dropped.
4. Ground units (:func:`_ground_units`): urban ground, lawns, parks, fields, scrub, forest,
   bare soil, with per-climate spectra; :mod:`.land`'s per-pixel textures.
5. :mod:`.canopy`: park and hill forests, street, courtyard and garden trees (evergreen in the tropics).
6. :mod:`.render`: the HR image on its date with the sun of the city's latitude (shadows of towers),
   a light optical blur and noise; then LR revisits exactly as world v2 (simulated, or real-world-like).

Roofs and pavements take their spectra from :mod:`.roofs` (cited sources).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from affine import Affine

from ...jobs import Progress
from ..degrade import sigma_for_bands, simulate_frames
from ..scene import Scene, make_split, write_scene
from . import canopy as cn
from . import land as ld
from .cities import CityStyle, european_blocks, high_rise, informal_settlement, superblocks
from .districts import desert_city, industrial, tropical_city, villa_suburb
from .geometry import blur3, gaussian_fft, polyline_field, smooth_curve
from .infra import motorway_interchange, port_rail_airport
from .phenology import CALENDAR_IDS
from .render import World, render, sun_position
from .revisits import real_world_frames, revisit_days
from .roofs import urban_sample
from .spectra import BANDS
from .terrain import Water, make_dem, make_water
from .towns import HR_PIXEL_M, fractal_noise
from .urban import GROUND, CityPlan, parcels
from .world_v2 import object_free_mask

__all__ = ["CITY_TYPES", "LOCATIONS", "WorldV3Params", "make_world_v3_scene", "make_world_v3_dataset", "BANDS"]

#: City type -> the function that builds it (one readable function per type).
CITY_TYPES: Dict[str, Callable[[CityPlan, CityStyle], None]] = {
    "european_blocks": european_blocks,
    "informal_settlement": informal_settlement,
    "high_rise": high_rise,
    "villa_suburb": villa_suburb,
    "superblocks": superblocks,
    "industrial": industrial,
    "port_rail_airport": port_rail_airport,
    "motorway_interchange": motorway_interchange,
    "desert_city": desert_city,
    "tropical_city": tropical_city,
}

#: Where each city type is placed: (place, latitude, longitude, climate). The UTM zone follows from the longitude.
LOCATIONS: Dict[str, Tuple[Tuple[str, float, float, str], ...]] = {
    "european_blocks": (("Barcelona", 41.39, 2.17, "temperate"), ("Berlin", 52.52, 13.40, "temperate"),
                        ("Paris", 48.86, 2.35, "temperate"), ("Vienna", 48.21, 16.37, "temperate"),
                        ("Budapest", 47.50, 19.04, "temperate"), ("Buenos Aires", -34.60, -58.38, "temperate")),
    "informal_settlement": (("Nairobi", -1.31, 36.79, "tropical"), ("Mumbai", 19.04, 72.85, "tropical"),
                            ("Rio de Janeiro", -22.99, -43.25, "tropical"), ("Lagos", 6.50, 3.39, "tropical"),
                            ("Cairo", 30.04, 31.28, "desert"), ("Karachi", 24.95, 67.00, "desert"),
                            ("Lima", -12.00, -77.00, "desert")),
    "high_rise": (("Shanghai", 31.23, 121.47, "temperate"), ("Dubai", 25.20, 55.27, "desert"),
                  ("Singapore", 1.29, 103.85, "tropical"), ("New York", 40.75, -73.99, "temperate"),
                  ("Hong Kong", 22.30, 114.17, "tropical"), ("Seoul", 37.50, 127.00, "temperate")),
    "villa_suburb": (("Phoenix", 33.45, -112.07, "desert"), ("Los Angeles", 34.05, -118.24, "temperate"),
                     ("Riyadh", 24.70, 46.70, "desert"), ("Johannesburg", -26.20, 28.04, "temperate"),
                     ("Brasilia", -15.80, -47.90, "tropical"), ("Houston", 29.76, -95.37, "temperate")),
    "superblocks": (("Moscow", 55.75, 37.62, "temperate"), ("Beijing", 39.90, 116.40, "temperate"),
                    ("Warsaw", 52.23, 21.01, "temperate"), ("Kyiv", 50.45, 30.52, "temperate"),
                    ("Tianjin", 39.13, 117.20, "temperate"), ("Almaty", 43.24, 76.89, "temperate")),
    "industrial": (("Duisburg", 51.43, 6.76, "temperate"), ("Detroit", 42.33, -83.05, "temperate"),
                   ("Shenzhen", 22.54, 114.06, "tropical"), ("Monterrey", 25.69, -100.32, "desert"),
                   ("Lodz", 51.76, 19.46, "temperate")),
    "port_rail_airport": (("Rotterdam", 51.90, 4.48, "temperate"), ("Hamburg", 53.55, 9.99, "temperate"),
                          ("Singapore", 1.26, 103.82, "tropical"), ("Jebel Ali", 25.00, 55.06, "desert"),
                          ("Santos", -23.96, -46.33, "tropical"), ("Chicago", 41.88, -87.63, "temperate")),
    "motorway_interchange": (("Frankfurt", 50.11, 8.68, "temperate"), ("Houston", 29.76, -95.37, "temperate"),
                             ("Madrid", 40.42, -3.70, "temperate"), ("Guangzhou", 23.13, 113.26, "tropical"),
                             ("Riyadh", 24.70, 46.70, "desert")),
    "desert_city": (("Riyadh", 24.70, 46.70, "desert"), ("Cairo", 30.04, 31.24, "desert"),
                    ("Marrakesh", 31.63, -7.99, "desert"), ("Tehran", 35.69, 51.39, "desert"),
                    ("Nouakchott", 18.08, -15.98, "desert")),
    "tropical_city": (("Kinshasa", -4.32, 15.31, "tropical"), ("Jakarta", -6.20, 106.85, "tropical"),
                      ("Manaus", -3.12, -60.02, "tropical"), ("Dhaka", 23.81, 90.41, "tropical"),
                      ("Accra", 5.60, -0.19, "tropical")),
}


@dataclass
class WorldV3Params:
    """Knobs of world v3 (defaults: the documented behaviour)."""

    city_types: Optional[Sequence[str]] = None  # draw only among these (None: all, equal weights)
    forest_hills_probability: float = 0.3  # forested (or rocky, in deserts) hills beside the town
    river_probability: float = 0.25
    max_shift_lr: float = 1.0  # simulated revisits: uniform shifts within +- this (LR px)
    misregistration_lr: float = 0.3  # real-world revisits: sd of the shift (LR px)
    cloud_probability: float = 0.35
    date_spread_days: int = 60
    hr_blur_sigma: float = 0.35
    hr_noise: float = 0.0015


def utm_epsg(lat: float, lon: float) -> int:
    """EPSG code of the WGS 84 / UTM zone holding (lat, lon)."""
    zone = int((lon + 180.0) // 6.0) + 1
    return (32600 if lat >= 0 else 32700) + zone


def _utm_origin(lat: float, lon: float, rng: np.random.Generator) -> Tuple[float, float]:
    """Approximate UTM easting/northing near (lat, lon), jittered by up to 8 km, snapped to the 10 m grid."""
    zone = int((lon + 180.0) // 6.0) + 1
    lon0 = -183.0 + 6.0 * zone
    e = 500_000.0 + (lon - lon0) * 111_320.0 * math.cos(math.radians(lat)) + rng.uniform(-8000, 8000)
    nn = lat * 110_574.0 + (10_000_000.0 if lat < 0 else 0.0) + rng.uniform(-8000, 8000)
    return 10.0 * round(e / 10.0), 10.0 * round(nn / 10.0)


# ---------------------------------------------------------------------- layers
def _free_layout(n: int, rng: np.random.Generator, dem: np.ndarray, city: str, p: WorldV3Params,
                 climate: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
    """Reserved object-free land, its ground units and the DEM with hills; every scene gets some."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    free = np.zeros((n, n), bool)
    ground = np.full((n, n), GROUND["urban"], np.int32)
    info: Dict[str, Any] = {"forest_hills": False}
    side = int(rng.integers(4))
    depth = (yy, n - yy, xx, n - xx)[side] + 0.06 * n * fractal_noise((n, n), 3.0, rng)
    if city not in ("port_rail_airport",) and rng.random() < p.forest_hills_probability:
        width = rng.uniform(0.2, 0.4) * n
        band = depth < width
        rise = np.clip((width - depth) / width, 0, 1)
        dem = dem + rng.uniform(40, 150) * rise ** 1.5 * (1 + 0.3 * fractal_noise((n, n), 3.2, rng))
        free |= band
        ground[band] = GROUND["forest"] if climate != "desert" else GROUND["scrub"]
        info["forest_hills"] = True
    elif rng.random() < 0.55:
        band = depth < rng.uniform(0.1, 0.22) * n
        free |= band
        ground[band] = GROUND[str(rng.choice(["field", "scrub", "park", "lawn"]))] if climate != "desert" else GROUND["bare"]
    else:  # a park in town
        cy, cx = rng.uniform(0.25, 0.75, 2) * n
        hy, hx = rng.uniform(0.12, 0.22, 2) * n
        park = (np.abs(yy - cy) < hy) & (np.abs(xx - cx) < hx)
        free |= park
        ground[park] = GROUND["park"] if climate != "desert" and rng.random() < 0.4 else GROUND["lawn"]
        info["park"] = True
    return free, ground, dem.astype(np.float32), info


def _park_details(plan: CityPlan, st: CityStyle, zone: np.ndarray, paths: bool) -> None:
    """Open parkland: clumps of trees on a lawn, and (in a town park) footpaths (paved, under 3 m: not roads)."""
    rng, n = plan.rng, plan.n
    clump = fractal_noise((n, n), 2.6, rng)
    ys, xs = np.nonzero(zone & (clump > rng.uniform(-0.2, 0.6)))
    keep = rng.random(ys.size) < 0.12
    plan.trees(ys[keep] + rng.random(keep.sum()), xs[keep] + rng.random(keep.sum()), int(rng.integers(1, 4)),
               st.tree_height)
    ys, xs = np.nonzero(zone)
    if ys.size < 100 or not paths:
        return
    for _ in range(int(rng.integers(2, 5))):
        a, b, c = rng.integers(ys.size, size=3)
        way = np.array([[ys[a], xs[a]], [ys[b], xs[b]], [ys[c], xs[c]]], np.float64) + 0.5
        pts = smooth_curve(way, 1.0)
        dist, _al, _sd = polyline_field(pts, 2.0, (n, n))
        a_ = np.clip(st.m(1.2) - np.where(np.isfinite(dist), dist, 9.0) + 0.5, 0, 1) * zone
        plan.paint((slice(0, n), slice(0, n)), a_, "paving_stone" if st.climate == "temperate" else "dirt_road")


def _ground_units(rng: np.random.Generator, climate: str) -> ld.Units:
    """One unit per :data:`GROUND` kind with the climate's spectra and calendars."""
    u = ld.Units.empty(len(GROUND))
    soil = {"temperate": "soil_loam", "desert": "desert_sand", "tropical": "laterite_road"}[climate]
    dry = "hay" if climate != "desert" else "straw"
    for i in range(u.size):
        u.spec[i, 0] = urban_sample("grass_green", 1, rng)[0]
        u.spec[i, 1] = urban_sample(dry, 1, rng)[0]
        u.spec[i, 2] = u.spec[i, 0]
        u.spec[i, 3] = urban_sample(soil, 1, rng)[0]
        u.theta[i] = rng.uniform(0, np.pi)
        u.vig_amp[i] = rng.uniform(0.08, 0.2)
    g = GROUND
    green = {"temperate": 1.0, "desert": 0.25, "tropical": 1.1}[climate]
    # urban ground: trodden soil and paving with a little weedy green
    u.cover[g["urban"]] = ld.COVER["bare"]
    u.calendar[g["urban"]] = CALENDAR_IDS["garden"]
    u.amp[g["urban"]] = 0.25 * green
    u.spec[g["urban"], 3] = 0.5 * u.spec[g["urban"], 3] + 0.5 * urban_sample("paving_stone", 1, rng)[0]
    u.cover[g["lawn"]] = ld.COVER["garden"]
    u.calendar[g["lawn"]] = CALENDAR_IDS["garden"]
    u.amp[g["lawn"]] = min(0.95 * max(green, 0.7), 1.0)  # lawns are watered, also in deserts
    for key, stand, height in (("park", 1, (12.0, 22.0)), ("forest", 3 if climate == "temperate" else 1, (15.0, 28.0))):
        i = g[key]
        u.cover[i] = ld.COVER["forest_deciduous"] if stand == 1 else ld.COVER["forest_mixed"]
        u.stand[i] = stand
        u.calendar[i] = CALENDAR_IDS["forest_floor"]
        u.spec[i, 0] = urban_sample("understory", 1, rng)[0]
        u.stand_height[i] = rng.uniform(*height)
        u.stand_spacing[i] = rng.uniform(2.0, 2.8) if key == "park" else rng.uniform(1.4, 2.2)
    if climate == "desert":  # rocky hills: no forest, sparse shrubs
        u.stand[g["forest"]] = 0
        u.cover[g["forest"]] = ld.COVER["scrub"]
        u.scrub[g["forest"]] = 0.15
    _field_unit(u, g["field"], rng)
    u.cover[g["scrub"]] = ld.COVER["scrub"]
    u.calendar[g["scrub"]] = CALENDAR_IDS["fallow"]
    u.amp[g["scrub"]] = 0.6 * green
    u.scrub[g["scrub"]] = rng.uniform(0.2, 0.5) if climate != "desert" else 0.08
    u.cover[g["bare"]] = ld.COVER["bare"]
    u.calendar[g["bare"]] = CALENDAR_IDS["bare"]
    return u


def _field_unit(u: ld.Units, i: int, rng: np.random.Generator) -> None:
    """Make unit ``i`` a field: a crop or grass calendar, tramlines on crops."""
    crop = str(rng.choice(["winter_cereal", "spring_cereal", "maize", "meadow", "pasture", "fallow"]))
    u.cover[i] = ld.COVER["grassland"] if crop in ("meadow", "pasture") else ld.COVER["arable"]
    u.calendar[i] = CALENDAR_IDS[crop]
    u.spec[i, 0] = urban_sample("crop_green", 1, rng)[0]
    u.spec[i, 1] = urban_sample("straw", 1, rng)[0]
    u.theta[i] = rng.uniform(0, np.pi)
    u.tram_period[i] = rng.choice([12.0, 18.0, 24.0]) / HR_PIXEL_M if "cereal" in crop else 0.0
    u.tram_strength[i] = rng.uniform(0.1, 0.3)
    u.shift[i] = rng.normal(0, 7)


def _tree_spec(rng: np.random.Generator, climate: str) -> Dict[str, np.ndarray]:
    leaf = urban_sample("leaf_deciduous", 1, rng)[0]
    spec = {"deciduous": leaf, "autumn": urban_sample("autumn_leaf", 1, rng)[0],
            "branches": urban_sample("branches", 1, rng)[0], "conifer": urban_sample("leaf_conifer", 1, rng)[0],
            "shrub": urban_sample("shrub", 1, rng)[0]}
    if climate != "temperate":  # evergreen: palms, tropical broadleaf, irrigated street trees
        spec["autumn"] = spec["branches"] = leaf * (0.85 if climate == "desert" else 1.0)
    return spec


def _harbour(water: Water, sea: np.ndarray, rng: np.random.Generator) -> Water:
    """Add a harbour's open water (sharp quay walls) to the scene's water."""
    if not sea.any():
        return water
    soft = gaussian_fft(sea.astype(np.float32), 0.6)
    depth = np.where(soft > 0.02, 4.0 * (soft - 0.5), -10.0).astype(np.float32)
    lake_depth = np.maximum(water.lake_depth, depth)
    slope = np.where(depth > -10, 4.0, water.shore_slope).astype(np.float32)
    spec = water.spec.copy()
    sea_spec = urban_sample(str(rng.choice(["water_turbid", "water_green", "water_clear"])), 1, rng)[0]
    spec[:, sea] = sea_spec[:, None]
    return Water(lake_depth, slope, water.river_alpha, water.river_dist, spec, water.rivers, water.river_width, 0.02)


def _build(n: int, rng: np.random.Generator, city: str, place: Tuple[str, float, float, str], p: WorldV3Params):
    """Static layers of one v3 scene (steps 1-5 of the module docstring)."""
    px = HR_PIXEL_M
    _name, lat, _lon, climate = place
    st = CityStyle(climate, px)
    dem = make_dem(n, rng, rng.uniform(3, 25))
    free, ground, dem, info = _free_layout(n, rng, dem, city, p, climate)
    river = city not in ("port_rail_airport", "desert_city") and climate != "desert" and rng.random() < p.river_probability
    water, dem = make_water(n, rng, dem, rivers=int(river), lakes=0, ponds=0, lake_size=0.2)
    wet = water.alpha(0.0) > 0.3
    plan = CityPlan(n, rng, px, wet)
    plan.free = free.copy()
    plan.ground = ground
    CITY_TYPES[city](plan, st)
    plan.ground[free] = ground[free]
    lawn = free & (ground == GROUND["lawn"])
    if lawn.any():
        _park_details(plan, st, lawn, bool(info.get("park")))
    info["dropped_objects"] = plan.prune()
    objects = plan.draw(rng)
    water = _harbour(water, plan.water & ~wet, rng)
    units = _ground_units(rng, climate)
    labels = plan.ground
    field = labels == GROUND["field"]
    if field.any():  # fields are parcels of 60-200 m, each with its own crop
        cells = parcels(n, rng, (rng.uniform(20, 60) / px, rng.uniform(90, 200) / px), (150 / px, 450 / px))
        ids = units.extend(6)
        for i in ids:
            _field_unit(units, int(i), rng)
            units.spec[i, 3] = units.spec[GROUND["field"], 3]
        labels[field] = ids[(cells[field] * 7919) % ids.size]
    surface = ld.surface(units, labels, rng, dem, px)
    # trees: no crown centre on carriageways, rails, buildings, paved areas or water
    clear = plan.planner.occupied | plan.planner.rail_mask | objects.buildings | (objects.alpha > 0.5) | plan.water
    crowns = cn.Crowns()
    y, x, cls, height, kind = plan.crowns.arrays()
    if y.size:
        ok = ~clear[np.clip(y.astype(np.int64), 0, n - 1), np.clip(x.astype(np.int64), 0, n - 1)]
        crowns.add(y[ok], x[ok], cls[ok], height[ok], kind[ok])
    cn.forest_crowns(crowns, units, labels, clear, rng)
    cn.scrub_crowns(crowns, units, labels, clear, rng)
    canopy = cn.draw_canopy(crowns, n, rng, px)
    grass = np.stack([urban_sample("grass_green", 1, rng)[0], urban_sample("hay", 1, rng)[0]])
    tone = np.exp(0.07 * rng.standard_normal(units.size)).astype(np.float32)
    world = World(n, px, dem, water, np.zeros((n, n), np.float32), units, labels, surface, canopy, objects,
                  _tree_spec(rng, climate), grass, tone)
    info.update(plan.info)
    return world, plan, info


# ---------------------------------------------------------------------- scene
def _seed_list(seed: Union[int, Sequence[int]]) -> List[int]:
    return [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]


def _date(year: int, doy: float) -> _dt.date:
    return _dt.date(year, 1, 1) + _dt.timedelta(days=int(round(doy)) - 1)


def make_world_v3_scene(
    size_hr: int = 384,
    frames: int = 9,
    seed: Union[int, Sequence[int]] = 0,
    real_world: bool = False,
    name: Optional[str] = None,
    city_type: Optional[str] = None,
    params: Optional[WorldV3Params] = None,
) -> Scene:
    """One world v3 scene (HR ``size_hr`` px square, 4 bands) of ``city_type`` (None: drawn by the seed)."""
    if size_hr < 96 or size_hr % 3:
        raise ValueError(f"size_hr must be a multiple of 3 and at least 96, got {size_hr}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    p = params or WorldV3Params()
    allowed = list(p.city_types) if p.city_types else list(CITY_TYPES)
    for c in allowed + ([city_type] if city_type else []):
        if c not in CITY_TYPES:
            raise ValueError(f"unknown city type {c!r}; choose from {', '.join(CITY_TYPES)}")
    parts = _seed_list(seed)
    rng = np.random.default_rng(np.random.SeedSequence([*parts, 0xC173]))
    city = city_type or str(allowed[int(rng.integers(len(allowed)))])
    place = LOCATIONS[city][int(rng.integers(len(LOCATIONS[city])))]
    n = size_hr
    world, plan, info = _build(n, rng, city, place, p)
    place_name, lat, lon, climate = place
    year = int(rng.integers(2019, 2025))
    hr_doy = float(rng.uniform(1, 366))
    # the renderer's calendars are northern; in the south the season is half a year on
    phen_doy = (hr_doy + 182.0) % 365.0 + 1.0 if lat < 0 else hr_doy
    az, el = sun_position(hr_doy, latitude=lat, solar_hour=float(rng.uniform(10.0, 11.2)))
    el = max(el, 8.0)
    refl, cover = render(world, phen_doy, az, el, level_m=0.0)
    hr = blur3(refl, p.hr_blur_sigma) + p.hr_noise * rng.standard_normal(refl.shape).astype(np.float32)
    hr = np.clip(hr, 1e-3, 1.0).astype(np.float32)
    masks = {"buildings": world.objects.buildings.copy(), "roads": world.objects.roads.copy()}
    epsg = utm_epsg(lat, lon)
    x0, y0 = _utm_origin(lat, lon, rng)
    hr_transform = Affine(HR_PIXEL_M, 0.0, x0, 0.0, -HR_PIXEL_M, y0)
    lr_transform = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    frame_info: List[Dict[str, Any]] = []
    if real_world:
        doys = revisit_days(rng, frames, phen_doy, p.date_spread_days)
        lr, lr_valid, shifts, frame_info = real_world_frames(world, doys, rng, parts, p.misregistration_lr,
                                                             p.cloud_probability)
        doys = (doys - phen_doy) + hr_doy
    else:
        doys = np.sort(hr_doy + rng.choice(np.arange(-30, 31, 5), size=frames, replace=frames > 13))
        lr, lr_valid, shifts = simulate_frames(hr, None, frames=frames, seed=(*parts, 1), max_shift_lr=p.max_shift_lr,
                                               sigma_hr=sigma_for_bands(BANDS))
    dates = [_date(year, float(np.clip(d, 1, 365))).isoformat() for d in doys]
    free = object_free_mask(masks)
    a = plan.buildings.arrays()
    extra: Dict[str, Any] = {
        "synthetic": True,
        "world": "v3",
        "level": "L2A",
        "version": "real-world" if real_world else "simulated",
        "seed": parts,
        "city_type": city,
        "place": place_name,
        "climate": climate,
        "epsg": epsg,
        "latitude": lat,
        "hr_date": _date(year, hr_doy).isoformat(),
        "sun": dict(azimuth=round(az, 2), elevation=round(el, 2)),
        "shifts_hr": np.round(shifts, 4).tolist(),
        "n_buildings": int(a["cy"].size),
        "n_roads": len(plan.planner.roads),
        "building_share": round(float(masks["buildings"].mean()), 4),
        "road_share": round(float(masks["roads"].mean()), 4),
        "object_free_share": round(float(free.mean()), 4),
        "land_cover_classes": dict(ld.COVER),
        "land_cover_share": {k: round(float((cover == c).mean()), 4) for k, c in ld.COVER.items() if (cover == c).any()},
        **info,
        "_land_cover": cover,
        # unlit colour of the man-made layer (roofs, pavements) per pixel: what the masks' pixels are made of
        "_object_color": world.objects.color / np.maximum(world.objects.alpha, 1e-6)[None],
        "_object_alpha": world.objects.alpha,
        "_buildings": [dict(kind="building", cy=float(cy), cx=float(cx), half_l=float(hl), half_w=float(hw), angle=float(an),
                            eave_m=round(float(e), 1)) for cy, cx, hl, hw, an, e in
                       zip(a["cy"], a["cx"], a["hl"], a["hw"], a["ang"], a["eave"])],
        "_roads": plan.planner.road_segments(),
    }
    if frame_info:
        extra["frames"] = frame_info
    return Scene(
        name=name or f"city_{'_'.join(str(s) for s in parts)}",
        lr=lr.astype(np.float32), lr_valid=lr_valid, hr=hr, hr_valid=np.ones(hr.shape[1:], bool), masks=masks,
        crs=f"EPSG:{epsg}", lr_transform=lr_transform, hr_transform=hr_transform, bands=list(BANDS), scale=3,
        dates=dates, radiometric_scale=1e-4, split=None, extra=extra,
    )


# ---------------------------------------------------------------------- dataset
def make_world_v3_dataset(
    out_root: Union[str, Path],
    n_scenes: int,
    size_hr: int = 384,
    seed: int = 0,
    real_world: bool = False,
    frames: int = 9,
    progress: Optional[Progress] = None,
    city_types: Optional[Sequence[str]] = None,
    params: Optional[WorldV3Params] = None,
) -> List[Path]:
    """Write ``n_scenes`` world v3 scene folders under ``out_root`` plus ``split.json``.

    City types cycle through ``city_types`` (default: all) in an order shuffled by
    ``seed``, so a dataset of k x (number of types) scenes holds every type k times.
    """
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be >= 1, got {n_scenes}")
    types = list(city_types) if city_types else list(params.city_types if params and params.city_types else CITY_TYPES)
    bad = [t for t in types if t not in CITY_TYPES]
    if bad:
        raise ValueError(f"unknown city type(s) {', '.join(bad)}; choose from {', '.join(CITY_TYPES)}")
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    pick = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC17E]))
    order = [types[i] for i in pick.permutation(len(types))]
    paths = []
    for i in range(n_scenes):
        name = f"city_{i:03d}"
        if progress:
            progress(i / n_scenes, f"generating {name}")
        scene = make_world_v3_scene(size_hr, frames, seed=(seed, i), real_world=real_world, name=name,
                                    city_type=order[i % len(order)], params=params)
        paths.append(write_scene(scene, out_root / name))
    make_split(out_root, seed=seed)
    if progress:
        progress(1.0, f"wrote {n_scenes} scene(s) to {out_root}")
    return paths
