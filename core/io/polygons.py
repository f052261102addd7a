"""Masks to polygons: one GeoPackage layer per mask band, streamed through GDAL's polygonizer.

Each polygon can carry statistics of other rasters on the same grid over its
own pixels (:class:`RasterStat`: a mean, or the share of pixels above a
value), plus fields derived from them (``derive``), and can be left out by a
``keep`` rule. Why here and not after the fact: the statistics are what make a
polygon worth keeping (e.g. "is this building also found without the SR
network?"), so the layer is written once, with them, atomically.

Memory: the polygonizer streams the mask band; a polygon's statistics read
its bounding box in blocks of :data:`_ROWS` rows, so even a road network
spanning the whole raster costs a strip, not the raster.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
from rasterio import features
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from ..jobs import OutputError
from .atomic import atomic_write
from .geo import apply

__all__ = ["RasterStat", "write_mask_vectors", "polygon_stats"]

PathLike = Union[str, os.PathLike]
#: Rows of a polygon's bounding box read at once for its statistics.
_ROWS = 512


@dataclass(frozen=True)
class RasterStat:
    """One attribute computed over each polygon's pixels from a raster on the mask's grid.

    ``bands``: layer name -> 1-based band of ``path`` (a layer missing here gets
    NULL; so does every polygon when ``path`` is None: the field exists, its
    value is unknown). ``above``: the share of the polygon's pixels whose value exceeds it,
    instead of the mean. NaN and ``ignore`` values are left out; no pixel left
    gives NULL.
    """

    field: str
    path: Optional[Path]
    bands: Mapping[str, int]
    above: Optional[float] = None
    ignore: Optional[float] = None


def _field_type(value: Any, ogr) -> int:
    if isinstance(value, (bool, int, np.integer)):
        return ogr.OFTInteger
    if isinstance(value, (float, np.floating)):
        return ogr.OFTReal
    return ogr.OFTString


def polygon_stats(geom: Dict[str, Any], datasets: Sequence[Tuple[RasterStat, Any, int]], transform,
                  shape: Tuple[int, int]) -> Dict[str, Optional[float]]:
    """The statistics of one polygon (GeoJSON ``geom`` in the grid's CRS) over its own pixels.

    ``datasets``: (stat, open dataset, band). A pixel belongs to the polygon
    when its centre lies inside it, as the polygonizer drew it from the mask.
    """
    coords = np.concatenate([np.asarray(ring, dtype=np.float64) for ring in geom["coordinates"]])
    cols, rows = apply(~transform, coords[:, 0], coords[:, 1])  # not ``*``: affine 3 warns at every call
    r0, r1 = max(0, int(math.floor(np.min(rows)))), min(shape[0], int(math.ceil(np.max(rows))))
    c0, c1 = max(0, int(math.floor(np.min(cols)))), min(shape[1], int(math.ceil(np.max(cols))))
    sums = [0.0] * len(datasets)
    counts = [0] * len(datasets)
    for y0 in range(r0, r1, _ROWS):
        y1 = min(r1, y0 + _ROWS)
        win = Window(c0, y0, c1 - c0, y1 - y0)
        inside = features.geometry_mask([geom], (y1 - y0, c1 - c0), window_transform(win, transform), invert=True)
        if not inside.any():
            continue
        for k, (stat, ds, band) in enumerate(datasets):
            v = ds.read(band, window=win, out_dtype="float64")[inside]
            ok = np.isfinite(v)
            if stat.ignore is not None:
                ok &= v != stat.ignore
            v = v[ok]
            counts[k] += v.size
            sums[k] += float((v > stat.above).sum()) if stat.above is not None else float(v.sum())
    return {stat.field: (sums[k] / counts[k] if counts[k] else None) for k, (stat, _ds, _b) in enumerate(datasets)}


def write_mask_vectors(mask_path: PathLike, out_path: PathLike, layers: Sequence[str], value: int = 1,
                       stats: Sequence[RasterStat] = (),
                       derive: Optional[Callable[[Dict[str, Optional[float]]], Dict[str, Any]]] = None,
                       keep: Optional[Callable[[Dict[str, Any]], bool]] = None) -> Dict[str, int]:
    """Polygonize each band of a mask GeoTIFF (pixels == ``value``) into a GeoPackage layer per band.

    Streams through GDAL's polygonizer on the file's bands (``rasterio.features.shapes``
    with band sources), so memory follows the number of polygons, not the raster.
    Every polygon has ``class`` and ``area_m2``, one field per :class:`RasterStat`
    (real, NULL when unknown) and the fields ``derive(stats)`` returns (their
    types from the values); ``keep(attributes)`` False leaves a polygon out.
    Written to a temporary file and renamed. Returns polygons written per layer.
    """
    out = Path(out_path)
    counts: Dict[str, int] = {}
    try:
        from osgeo import ogr, osr
    except ImportError as exc:  # pragma: no cover - GDAL's bindings ship with QGIS and Debian
        raise OutputError(f"{out}: writing vectors needs GDAL's Python bindings (osgeo): {exc}") from exc
    ogr.UseExceptions()
    sample = derive({s.field: None for s in stats}) if derive is not None else {}
    with atomic_write(out, ".gpkg") as tmp, rasterio.open(mask_path) as src:
        opened: List[Tuple[RasterStat, Any]] = []
        try:
            for s in stats:
                if s.path is None:
                    continue
                ds = rasterio.open(s.path)
                opened.append((s, ds))
                if (ds.width, ds.height) != (src.width, src.height) or not ds.transform.almost_equals(src.transform):
                    raise OutputError(f"{s.path}: not on the grid of {Path(mask_path).name}; cannot compute "
                                      f"{s.field} per polygon")
            vds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
            if vds is None:
                raise OutputError(f"{out}: cannot create the GeoPackage")
            try:
                srs = osr.SpatialReference()
                srs.ImportFromWkt(src.crs.to_wkt())
                srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
                for bidx, name in enumerate(layers, start=1):
                    layer = vds.CreateLayer(name, srs, ogr.wkbPolygon)
                    layer.CreateField(ogr.FieldDefn("class", ogr.OFTString))
                    layer.CreateField(ogr.FieldDefn("area_m2", ogr.OFTReal))
                    for s in stats:
                        layer.CreateField(ogr.FieldDefn(s.field, ogr.OFTReal))
                    for k, v in sample.items():
                        layer.CreateField(ogr.FieldDefn(k, _field_type(v, ogr)))
                    defn = layer.GetLayerDefn()
                    datasets = [(s, ds, s.bands[name]) for s, ds in opened if name in s.bands]
                    missing = [s.field for s in stats if s.path is None or name not in s.bands]
                    layer.StartTransaction()
                    n = 0
                    band = rasterio.band(src, bidx)
                    for geom, val in features.shapes(band, mask=band, connectivity=8, transform=src.transform):
                        if int(val) != value:
                            continue
                        attrs: Dict[str, Any] = polygon_stats(geom, datasets, src.transform,
                                                              (src.height, src.width)) if datasets else {}
                        attrs.update({f: None for f in missing})
                        if derive is not None:
                            attrs.update(derive(dict(attrs)))
                        if keep is not None and not keep(attrs):
                            continue
                        g = ogr.CreateGeometryFromJson(json.dumps(geom))
                        feat = ogr.Feature(defn)
                        feat.SetField("class", name)
                        feat.SetField("area_m2", g.GetArea())
                        for k, v in attrs.items():
                            if v is not None:
                                feat.SetField(k, v.item() if isinstance(v, np.generic) else v)
                        feat.SetGeometry(g)
                        layer.CreateFeature(feat)
                        n += 1
                    layer.CommitTransaction()
                    counts[name] = n
            finally:
                vds = None  # closes the file before the rename (or the clean-up)
        finally:
            for _s, ds in opened:
                ds.close()
    return counts
