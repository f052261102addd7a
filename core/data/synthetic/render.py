"""Draw a world v2 scene on a date: mix end-members by phenology, add water, objects and trees, light it.

Why split from the layers: the real-world-like revisits need the same place
on several dates (crops grown or harvested, meadows mown, leaves on or off,
lake level, sun height), so all static layers are built once and this module
only combines them; one date costs a few dozen array operations.

Light: reflectance x (ambient + (1 - ambient) x direct x (1 - cast shadow)),
per band (see :data:`spectra.AMBIENT`). ``direct`` is the cosine of the sun's
incidence on the surface relative to flat ground: from the DEM for the
ground (hillshade), from roof planes on buildings, and from crown relief
times a stronger hillshade under trees (canopies show relief more than
fields do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from .canopy import Canopy, tree_cover_codes
from .geometry import blur3, cast_shadow, sun_vector
from .land import COVER, Surface, Units
from .objects import ObjectLayer
from .phenology import CALENDAR_IDS, autumn, fractions, leaf_on
from .spectra import AMBIENT
from .terrain import Water

__all__ = ["World", "render", "sun_position"]


@dataclass
class World:
    """All static layers of one scene."""

    n: int
    pixel_m: float
    dem: np.ndarray
    water: Water
    reed: np.ndarray
    units: Units
    labels: np.ndarray
    surface: Surface
    canopy: Canopy
    objects: ObjectLayer
    tree_spec: Dict[str, np.ndarray]  # deciduous, autumn, branches, conifer, shrub: [4]
    grass_spec: np.ndarray  # [2, 4] green, hay (balks)
    unit_tone: np.ndarray  # [U] stand-level brightness of crowns

    def __post_init__(self) -> None:
        self._dem_grad = np.gradient(self.dem.astype(np.float32), self.pixel_m)
        self._crown_grad = np.gradient(self.canopy.relief, self.pixel_m)


def sun_position(doy: float, latitude: float = 50.0, solar_hour: float = 10.5) -> Tuple[float, float]:
    """(azimuth, elevation) in degrees at Sentinel-2's morning overpass on day ``doy``."""
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.0)
    lat = math.radians(latitude)
    h = math.radians(15.0 * (solar_hour - 12.0))
    sin_el = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(h)
    el = math.asin(sin_el)
    cos_az = (math.sin(decl) - sin_el * math.sin(lat)) / (math.cos(el) * math.cos(lat))
    az = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    if h > 0:
        az = 360.0 - az
    return az, math.degrees(el)


def _ratio(grad: Tuple[np.ndarray, np.ndarray], s: Tuple[float, float, float]) -> np.ndarray:
    gy, gx = grad
    cos_i = (-gx * s[0] + gy * s[1] + s[2]) / np.sqrt(gx * gx + gy * gy + 1.0)
    return (np.maximum(cos_i, 0.0) / s[2]).astype(np.float32)


def render(world: World, doy: float, azimuth: float, elevation: float, level_m: float = 0.0,
           canopy_gain: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """Surface reflectance [4, H, W] on day ``doy`` with the sun at (azimuth, elevation), and the cover codes."""
    u, lab, sf = world.units, world.labels, world.surface
    g, d, f = fractions(u.calendar, doy, u.shift, u.amp, u.cuts)
    fg = np.clip(g[lab] * sf.vigour * (1.0 - sf.tram), 0.0, 1.0)
    fd = np.clip(d[lab] * (1.0 + 3.0 * sf.streak), 0.0, 1.0)
    ff = np.clip(f[lab] * sf.vigour, 0.0, 1.0)
    tot = fg + fd + ff
    over = np.maximum(tot, 1.0)
    fg, fd, ff = fg / over, fd / over, ff / over
    fs = 1.0 - fg - fd - ff
    em = sf.endmembers
    ground = fg * em[0] + fd * em[1] + ff * em[2] + (fs * (1.0 + sf.streak)) * em[3]
    if sf.balk.any():  # grass strips between fields, on the meadow calendar without cuts
        gb, db, _fb = fractions(np.array([CALENDAR_IDS["meadow"]]), doy, np.zeros(1), np.ones(1), np.zeros((1, 0)))
        gs = world.grass_spec[:, :, None, None]
        strip = gb[0] * gs[0] + db[0] * gs[1] + (1 - gb[0] - db[0]) * em[3]
        ground = ground * (1 - sf.balk) + strip * sf.balk
    # a boundary between two parcels crosses its pixels at any angle: they are mixed pixels, not a staircase
    ground = np.where(sf.edge[None], 0.5 * ground + 0.5 * blur3(ground, 0.7), ground)
    wa = world.water.alpha(level_m) * (1.0 - world.reed)
    ground = ground * (1 - wa) + world.water.spec * wa
    obj = world.objects
    ground = obj.color + ground * (1 - obj.alpha)
    # trees: broadleaf foliage follows the season; conifers barely change; shrubs leaf out a week earlier
    ts = world.tree_spec
    lo, au = leaf_on(doy), autumn(doy)
    lo_s = leaf_on(doy, -7.0)
    leaf = (1 - au) * ts["deciduous"] + au * ts["autumn"]
    dec = lo * leaf + (1 - lo) * ts["branches"]
    con = ts["conifer"] * np.array([1, 1, 1, 0.94 + 0.06 * lo], np.float32)
    shr = lo_s * ((1 - au) * ts["shrub"] + au * ts["autumn"]) + (1 - lo_s) * ts["branches"]
    cp = world.canopy
    c_share, s_share = cp.conifer, cp.shrub
    tree = ((1 - c_share - s_share) * dec[:, None, None] + c_share * con[:, None, None] + s_share * shr[:, None, None])
    tree = tree * (cp.tone * world.unit_tone[lab] * canopy_gain)[None]
    # leafless broadleaf crowns let the ground show through
    see = 0.55 + 0.45 * (lo * (1 - c_share - s_share) + c_share + lo_s * s_share)
    ta = cp.alpha * see
    surf = ground * (1 - ta) + tree * ta
    # light
    s = tuple(float(v) for v in sun_vector(azimuth, elevation))  # Python floats keep float32 maths on numpy 2
    r_ground = _ratio(world._dem_grad, s)
    r_crown = _ratio(world._crown_grad, s)
    nrm = obj.normal
    r_roof = np.maximum(nrm[0] * s[0] + nrm[1] * s[1] + nrm[2] * s[2], 0.0) / s[2]
    # crowns: 0.85 for the mutual shading inside a canopy that one relief surface does not capture
    direct = (1 - ta) * r_ground ** 0.8 * r_roof + ta * 0.85 * r_ground ** 1.5 * r_crown
    heights = np.maximum(obj.height, cp.height)
    shadow = cast_shadow(heights, world.pixel_m, azimuth, elevation)
    light = AMBIENT[:, None, None] + (1 - AMBIENT[:, None, None]) * (direct * (1 - shadow))[None]
    refl = surf * light
    cover = _cover(world, wa, ta)
    return refl.astype(np.float32), cover


def _cover(world: World, water_alpha: np.ndarray, tree_alpha: np.ndarray) -> np.ndarray:
    code = world.units.cover[world.labels].astype(np.int16)
    code = np.where(water_alpha >= 0.5, COVER["water"], code)
    code = np.where(world.objects.cover > 0, world.objects.cover, code)
    trees = tree_cover_codes(world.canopy, world.units, world.labels)
    return np.where((trees > 0) & (tree_alpha >= 0.5), trees, code).astype(np.int16)
