"""Masks to polygons: one GeoPackage layer per mask band, streamed through GDAL's polygonizer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Sequence, Union

import rasterio

from ..jobs import OutputError
from .atomic import atomic_write

PathLike = Union[str, os.PathLike]


# --------------------------------------------------------------------------- vectors


def write_mask_vectors(mask_path: PathLike, out_path: PathLike, layers: Sequence[str], value: int = 1) -> Dict[str, int]:
    """Polygonize each band of a mask GeoTIFF (pixels == ``value``) into a GeoPackage layer per band.

    Streams through GDAL's polygonizer on the file's bands (``rasterio.features.shapes``
    with band sources), so memory follows the number of polygons, not the raster.
    Written to a temporary file and renamed. Returns polygons per layer.
    """
    from rasterio import features

    out = Path(out_path)
    counts: Dict[str, int] = {}
    try:
        from osgeo import ogr, osr
    except ImportError as exc:  # pragma: no cover - GDAL's bindings ship with QGIS and Debian
        raise OutputError(f"{out}: writing vectors needs GDAL's Python bindings (osgeo): {exc}") from exc
    ogr.UseExceptions()
    with atomic_write(out, ".gpkg") as tmp, rasterio.open(mask_path) as src:
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
                defn = layer.GetLayerDefn()
                layer.StartTransaction()
                n = 0
                band = rasterio.band(src, bidx)
                for geom, val in features.shapes(band, mask=band, connectivity=8, transform=src.transform):
                    if int(val) != value:
                        continue
                    g = ogr.CreateGeometryFromJson(json.dumps(geom))
                    feat = ogr.Feature(defn)
                    feat.SetField("class", name)
                    feat.SetField("area_m2", g.GetArea())
                    feat.SetGeometry(g)
                    layer.CreateFeature(feat)
                    n += 1
                layer.CommitTransaction()
                counts[name] = n
        finally:
            vds = None  # closes the file before the rename (or the clean-up)
    return counts
