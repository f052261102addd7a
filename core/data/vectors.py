"""Rasterise OpenStreetMap buildings and roads onto the HR grid to make task masks.

Input is any OGR-readable vector file (GeoPackage, GeoJSON, Shapefile, e.g. a
QuickOSM export): a polygon layer of buildings, or a line layer of roads whose
``highway`` attribute (OSM class) sets the width, unless the feature carries
OSM's own ``width`` tag in metres. Geometries are reprojected
to the grid's CRS (``rasterio.warp.transform_geom``); roads are buffered by half
their width *in metres*, in the grid CRS when it is projected, otherwise in the
local UTM zone; then ``rasterio.features.rasterize`` burns them with
``all_touched=False`` (a pixel belongs to an object when its centre does), so a
mask's area matches the footprint's area instead of growing by half a pixel
all around.

Roads are what vehicles drive on: OSM classes without motor traffic
(:data:`NON_VEHICLE_CLASSES`: footways, paths, steps, pedestrian zones, cycleways,
bridleways, corridors, platforms, and ways not built or no longer used) are left
out by default, since footways alone covered 17.6 % of a real city centre.
``widths`` brings any of them back (``{"footway": 2}``) or drops another class
(width 0).

Reading uses GDAL's own Python bindings (``osgeo.ogr``), which every QGIS ships,
and falls back to ``fiona`` when only that is installed; buffering uses OGR,
or ``shapely`` with fiona. GDAL's messages about broken geometries are
collected and summed up in one log line; such features are skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.features import rasterize
from rasterio.transform import array_bounds
from rasterio.warp import transform_geom

from ..io.atomic import atomic_write
from ..io.writer import CPLError, check_output_path
from ..jobs import InputError, PathLike
from .road_classes import DEFAULT_ROAD_WIDTH_M, NON_VEHICLE_CLASSES, ROAD_WIDTHS_M
from .scene import SceneError, write_geotiff

__all__ = [
    "ROAD_WIDTHS_M",
    "NON_VEHICLE_CLASSES",
    "DEFAULT_ROAD_WIDTH_M",
    "road_widths",
    "rasterize_vectors",
    "is_kind",
    "rasterize_to_grid",
    "read_features",
    "vector_backend",
]

log = logging.getLogger(__name__)

_POLYGONS = {"Polygon", "MultiPolygon"}
_LINES = {"LineString", "MultiLineString"}


def vector_backend() -> str:
    """"ogr" or "fiona": whichever vector reader this Python has (OGR first)."""
    try:
        from osgeo import ogr  # noqa: F401

        return "ogr"
    except ImportError:
        pass
    try:
        import fiona  # noqa: F401

        return "fiona"
    except ImportError:
        raise SceneError(
            "reading vector files needs GDAL's Python bindings (osgeo, shipped with QGIS) or fiona"
        ) from None


# ---------------------------------------------------------------------- reading
def read_features(
    path: PathLike, layer: Optional[str] = None, geometry: Optional[str] = None
) -> Tuple[str, List[Tuple[Dict[str, Any], Dict[str, Any]]]]:
    """(source CRS as WKT or "", [(GeoJSON geometry, attributes)]) of one layer.

    ``layer``: name (default: the first layer whose geometries are ``geometry``
    "polygon"/"line", else the first layer).
    """
    path = Path(path)
    if not path.exists():
        raise SceneError(f"{path}: vector file not found")
    backend = vector_backend()
    reader = _read_ogr if backend == "ogr" else _read_fiona
    return reader(path, layer, geometry)


def _wanted(geom_type: str, geometry: Optional[str]) -> bool:
    if geometry == "polygon":
        return "POLYGON" in geom_type.upper()
    if geometry == "line":
        return "LINE" in geom_type.upper()
    return True


def _read_ogr(path: Path, layer: Optional[str], geometry: Optional[str]):
    from osgeo import ogr, osr

    try:  # without ogr.UseExceptions() (process-wide state) a failure is None; with it, RuntimeError
        ds = ogr.Open(str(path))
    except RuntimeError as exc:
        raise SceneError(f"{path}: not a vector file OGR can read ({exc})") from None
    if ds is None or ds.GetLayerCount() == 0:
        raise SceneError(f"{path}: not a vector file OGR can read, or it has no layers")
    names = [ds.GetLayerByIndex(i).GetName() for i in range(ds.GetLayerCount())]
    if layer is not None:
        lyr = ds.GetLayerByName(layer)
        if lyr is None:
            raise SceneError(f"{path}: no layer {layer!r}; layers: {', '.join(names)}")
    else:
        lyr = None
        for i in range(ds.GetLayerCount()):
            cand = ds.GetLayerByIndex(i)
            if _wanted(ogr.GeometryTypeToName(cand.GetGeomType()), geometry):
                lyr = cand
                break
        lyr = lyr or ds.GetLayerByIndex(0)
        if len(names) > 1:
            log.info("%s: using layer %r of %s", path, lyr.GetName(), names)
    srs = lyr.GetSpatialRef()
    if srs is not None:
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    crs = srs.ExportToWkt() if srs is not None else ""
    feats = []
    for feat in lyr:
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        attrs = {k.lower(): v for k, v in feat.items().items()}
        feats.append((json.loads(geom.ExportToJson()), attrs))
    return crs, feats


def _read_fiona(path: Path, layer: Optional[str], geometry: Optional[str]):
    import fiona

    try:
        layers = fiona.listlayers(str(path))
    except Exception as exc:  # noqa: BLE001 - fiona raises several driver errors
        raise SceneError(f"{path}: not a vector file fiona can read ({exc})") from None
    if layer is not None and layer not in layers:
        raise SceneError(f"{path}: no layer {layer!r}; layers: {', '.join(layers)}")
    chosen = layer
    if chosen is None:
        for name in layers:
            with fiona.open(str(path), layer=name) as src:
                if _wanted(str(src.schema.get("geometry", "")), geometry):
                    chosen = name
                    break
        chosen = chosen or layers[0]
    with fiona.open(str(path), layer=chosen) as src:
        crs = src.crs_wkt or ""
        feats = []
        for f in src:
            if f["geometry"] is None:
                continue
            geom = dict(f["geometry"]) if not hasattr(f["geometry"], "__geo_interface__") else f["geometry"].__geo_interface__
            attrs = {k.lower(): v for k, v in dict(f["properties"]).items()}
            feats.append((json.loads(json.dumps(geom)), attrs))
    return crs, feats


# ---------------------------------------------------------------------- geometry
def _buffer(geom: Dict[str, Any], distance: float) -> Dict[str, Any]:
    """Buffer a GeoJSON geometry by ``distance`` (same units as its coordinates)."""
    try:
        from osgeo import ogr

        g = ogr.CreateGeometryFromJson(json.dumps(geom))
        return json.loads(g.Buffer(distance, 16).ExportToJson())
    except ImportError:
        from shapely.geometry import mapping, shape  # fiona set-ups normally have shapely

        return dict(mapping(shape(geom).buffer(distance, 16)))


def _utm_for(lon: float, lat: float) -> str:
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


def _first_point(geom: Dict[str, Any]) -> Tuple[float, float]:
    c: Any = geom["coordinates"]
    while isinstance(c[0], (list, tuple)):
        c = c[0]
    return float(c[0]), float(c[1])


def _tag(attrs: Dict[str, Any], key: str) -> Optional[str]:
    value = attrs.get(key)
    return None if value is None or str(value).strip() == "" else str(value).strip().lower()


def is_kind(gtype: str, attrs: Dict[str, Any], kind: str) -> bool:
    """Does a feature count as a building / road?

    In a layer with the OSM tag as a field, the tag decides (an OSM export may mix
    buildings, roads and rivers); without the field, the geometry type decides.
    """
    if kind == "buildings":
        if gtype not in _POLYGONS:
            return False
        return "building" not in attrs or _tag(attrs, "building") not in (None, "no")
    if "highway" in attrs:
        return gtype in (_LINES | _POLYGONS) and _tag(attrs, "highway") is not None
    return gtype in _LINES


def _width_tag(value: Any) -> Optional[float]:
    """OSM's ``width=*`` tag in metres ("7", "7.5 m", 7.5); None when absent or not metres."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip().lower().replace(",", ".")
        text = text[:-1].strip() if text.endswith("m") else text
        try:
            number = float(text)
        except ValueError:  # feet and inches ("12'"), ranges: fall back to the class width
            return None
    return number if math.isfinite(number) and number > 0 else None


def _road_width(attrs: Dict[str, Any], widths: Dict[str, float], default: float) -> float:
    """The feature's own ``width`` tag (metres) when it has one, else its class width, else ``default``."""
    tagged = _width_tag(attrs.get("width"))
    if tagged is not None:
        return tagged
    cls = attrs.get("highway")
    if cls is None:
        return default
    return float(widths.get(str(cls).strip().lower(), default))


def road_widths(widths: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """The width table in use: the defaults, the non-vehicle classes left out (0), then ``widths``.

    A width of 0 leaves a class out; a positive width includes it (also one of
    :data:`NON_VEHICLE_CLASSES`). Refuses widths that are not finite numbers >= 0.
    """
    table = {**ROAD_WIDTHS_M, **{c: 0.0 for c in NON_VEHICLE_CLASSES}}
    for key, value in (widths or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InputError(f"road width of {key!r} must be a number of metres >= 0 (0 leaves the class out), "
                             f"got {value!r}")
        table[str(key).strip().lower()] = float(value)
    return table


@dataclass
class _Shapes:
    """Geometries of one kind, in the grid CRS, ready to burn, and what was left out on the way."""

    shapes: List[Dict[str, Any]] = field(default_factory=list)
    features: int = 0  # read from the layer
    other_kind: int = 0  # not buildings / not roads
    left_out: Counter = field(default_factory=Counter)  # road classes with width 0, by class
    invalid: int = 0  # geometries GDAL could not reproject or buffer
    messages: List[str] = field(default_factory=list)  # what GDAL said meanwhile

    def bounds(self) -> Optional[Tuple[float, float, float, float]]:
        xs: List[float] = []
        ys: List[float] = []
        for g in self.shapes:
            for x, y in _points(g.get("coordinates", [])):
                xs.append(x)
                ys.append(y)
        return (min(xs), min(ys), max(xs), max(ys)) if xs else None

    def summary(self, kind: str) -> str:
        parts = [f"{self.features} feature(s) read"]
        if self.other_kind:
            parts.append(f"{self.other_kind} not {kind}")
        if self.left_out:
            parts.append("left out: " + ", ".join(f"{n} {c}" for c, n in self.left_out.most_common()))
        if self.invalid:
            parts.append(f"{self.invalid} with broken geometry")
        return "; ".join(parts)


def _points(coords: Any) -> Iterator[Tuple[float, float]]:
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (int, float)):
        yield float(coords[0]), float(coords[1])
        return
    for c in coords or []:
        yield from _points(c)


@contextlib.contextmanager
def _gdal_messages(sink: List[str]) -> Iterator[None]:
    """Collect GDAL's messages (instead of one printed line per broken geometry) while the block runs."""
    try:
        from osgeo import gdal
    except ImportError:  # fiona set-ups: rasterio logs GDAL's messages itself
        yield
        return

    def handler(err_class: int, err_no: int, message: str) -> None:
        sink.append(" ".join(str(message).split()))

    gdal.PushErrorHandler(handler)
    try:
        yield
    finally:
        gdal.PopErrorHandler()


def _prepare(vector_path: PathLike, crs: str, kind: str, layer: Optional[str],
             widths: Optional[Dict[str, float]], default_width: float) -> _Shapes:
    """Read one layer and turn its features of ``kind`` into geometries in ``crs`` (roads buffered)."""
    if kind not in ("buildings", "roads"):
        raise SceneError(f"kind must be 'buildings' or 'roads', got {kind!r}")
    if not crs:
        raise SceneError("the target grid has no CRS; masks need a georeferenced grid")
    dst = CRS.from_user_input(crs)
    src_wkt, feats = read_features(vector_path, layer, "polygon" if kind == "buildings" else "line")
    if src_wkt:
        src = CRS.from_wkt(src_wkt)
    else:
        log.warning("%s: layer has no CRS; assuming WGS 84 longitude/latitude (EPSG:4326)", vector_path)
        src = CRS.from_epsg(4326)
    table = road_widths(widths)
    out = _Shapes(features=len(feats))
    with _gdal_messages(out.messages):
        for geom, attrs in feats:
            if not is_kind(geom.get("type", ""), attrs, kind):
                out.other_kind += 1
                continue
            if kind == "roads":
                cls = _tag(attrs, "highway")
                width = _road_width(attrs, table, default_width)
                if cls is not None and table.get(cls) == 0.0:
                    out.left_out[cls] += 1
                    continue
            try:
                shape = transform_geom(src, dst, geom) if kind == "buildings" else \
                    _buffer_metres(geom, src, dst, width / 2.0)
            except (ValueError, RuntimeError, AttributeError, TypeError, RasterioError, CPLError):
                shape = None
            if not shape or not shape.get("coordinates"):
                out.invalid += 1
                continue
            out.shapes.append(shape)
    if out.other_kind:
        log.info("%s: skipped %d feature(s) that are not %s", vector_path, out.other_kind, kind)
    if out.left_out:
        log.info("%s: left out %s (not roads for vehicles; give them a width to include them)", vector_path,
                 ", ".join(f"{n} {c}" for c, n in out.left_out.most_common()))
    if out.invalid or out.messages:
        first = f"; GDAL said {len(out.messages)} time(s), first: {out.messages[0]}" if out.messages else ""
        log.warning("%s: skipped %d %s feature(s) with broken geometry%s", vector_path, out.invalid, kind, first)
    return out


def _burn(shapes: _Shapes, transform: Affine, shape: Tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    if shapes.shapes:
        rasterize(((g, 1) for g in shapes.shapes), out_shape=shape, transform=transform, out=out,
                  all_touched=False, dtype=np.uint8)
    return out.astype(bool)


def rasterize_vectors(
    vector_path: PathLike,
    transform: Affine,
    shape: Tuple[int, int],
    crs: str,
    kind: str = "buildings",
    layer: Optional[str] = None,
    widths: Optional[Dict[str, float]] = None,
    default_width: float = DEFAULT_ROAD_WIDTH_M,
) -> np.ndarray:
    """Burn a buildings (polygons) or roads (lines, buffered by OSM class) layer into a bool mask.

    An empty mask is a valid answer here (a strip of an area without roads);
    :func:`rasterize_to_grid` is the one that refuses a layer missing its grid.
    """
    return _burn(_prepare(vector_path, crs, kind, layer, widths, default_width), transform, shape)


def _buffer_metres(geom: Dict[str, Any], src: CRS, dst: CRS, half_width_m: float) -> Dict[str, Any]:
    if dst.is_projected and abs(dst.linear_units_factor[1] - 1.0) < 1e-9:
        return _buffer(transform_geom(src, dst, geom), half_width_m)
    lon, lat = _first_point(transform_geom(src, CRS.from_epsg(4326), geom))
    utm = CRS.from_user_input(_utm_for(lon, lat))
    return transform_geom(utm, dst, _buffer(transform_geom(src, utm, geom), half_width_m))


def rasterize_to_grid(
    vector_path: PathLike,
    grid_raster: PathLike,
    out_path: PathLike,
    kind: str = "buildings",
    layer: Optional[str] = None,
    widths: Optional[Dict[str, float]] = None,
) -> Path:
    """Rasterise onto the grid of ``grid_raster`` (e.g. a scene's hr.tif); write a uint8 0/1 GeoTIFF atomically.

    Refuses, naming both extents in the grid's CRS, a layer with no usable
    feature of ``kind`` and one whose features cover no pixel of the grid (a
    wrong file or a wrong CRS): an empty mask would train a network on nothing.
    """
    grid_raster, out_path = Path(grid_raster), Path(out_path)
    try:
        with rasterio.open(grid_raster) as ds:
            transform, shape = ds.transform, (ds.height, ds.width)
            crs = ds.crs.to_string() if ds.crs else ""
    except (RasterioIOError, RasterioError, CPLError) as exc:
        raise SceneError(f"{grid_raster}: not a raster GDAL can read ({exc})") from None
    if not crs:
        raise SceneError(f"{grid_raster}: has no CRS; the mask grid must be georeferenced")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    check_output_path(out_path, [grid_raster, vector_path])
    shapes = _prepare(vector_path, crs, kind, layer, widths, DEFAULT_ROAD_WIDTH_M)
    left, bottom, right, top = array_bounds(shape[0], shape[1], transform)
    grid_extent = f"x {left:.1f}..{right:.1f}, y {bottom:.1f}..{top:.1f}"
    if not shapes.shapes:
        raise SceneError(f"{vector_path}: no usable {kind} in the layer ({shapes.summary(kind)}); the mask would "
                         "be empty")
    mask = _burn(shapes, transform, shape)
    if not mask.any():
        x0, y0, x1, y1 = shapes.bounds() or (math.nan,) * 4
        raise SceneError(
            f"{vector_path}: the {len(shapes.shapes)} {kind} cover no pixel of {grid_raster.name}: they lie at "
            f"x {x0:.1f}..{x1:.1f}, y {y0:.1f}..{y1:.1f} and the grid covers {grid_extent} (both in {crs}); "
            "wrong file, or wrong CRS in one of them?"
        )
    with atomic_write(out_path, suffix=".tif") as tmp:
        write_geotiff(tmp, mask.astype(np.uint8), crs, transform, descriptions=[kind])
    return out_path
