"""QGIS layers -> the local files the engine reads (main thread only).

Why one module: the dock, the Processing algorithms, the comparison and the
area fine-tune all start from *layers* an analyst picked, while the engine
reads *files*. Each of them must refuse the same things with the same words
(a WMS layer, a file read over the network, a file deleted since it was
loaded, an empty OSM layer) before any work starts, so the refusals live here
once. Vector layers are exported as they are shown (filter applied, own CRS
kept: the engine reprojects) so a temporary QuickOSM layer works and a run is
reproducible from its folder alone.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, List, Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapLayer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)

from ..core.api import MaskSource

__all__ = ["Refused", "layer_file", "utm_crs_for_layer", "revisit_files", "vector_kind_problem", "export_vector",
           "mask_source"]


class Refused(ValueError):
    """The UI will not start a job; the message says why, in the analyst's words."""


def layer_file(layer: Optional[QgsMapLayer]) -> str:
    """The local file behind a raster layer, or :class:`Refused` saying why there is none."""
    if layer is None:
        raise Refused("no layer chosen")
    if not isinstance(layer, QgsRasterLayer):
        raise Refused(f"'{layer.name()}' is not a raster layer; choose a raster (GeoTIFF, JP2, ...)")
    provider = layer.providerType()
    if provider != "gdal":
        raise Refused(f"'{layer.name()}' comes from a {provider.upper()} service, not a file on this computer: "
                      "save it as a GeoTIFF first (right-click > Export > Save As...) and use that layer")
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = str(parts.get("path") or layer.source())
    if path.startswith("/vsicurl") or "://" in path:
        raise Refused(f"'{layer.name()}' is read over the network ({path.split('?')[0]}): "
                      "download it or save it as a GeoTIFF first")
    if not os.path.isfile(path):
        raise Refused(f"'{layer.name()}': its file {path} does not exist (moved or deleted?)")
    return path


def utm_crs_for_layer(layer: QgsMapLayer) -> QgsCoordinateReferenceSystem:
    """The WGS 84 UTM zone of a layer's centre (what the engine warps rasters in degrees to)."""
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    centre = QgsCoordinateTransform(layer.crs(), wgs84, QgsProject.instance()).transform(layer.extent().center())
    zone = min(60, max(1, int(math.floor((centre.x() + 180.0) / 6.0)) + 1))
    return QgsCoordinateReferenceSystem(f"EPSG:{(32600 if centre.y() >= 0 else 32700) + zone}")


def revisit_files(layers: Iterable[Optional[QgsMapLayer]]) -> List[str]:
    """Files of the chosen revisit layers (each once, in order), or :class:`Refused`."""
    out: List[str] = []
    for layer in layers:
        path = layer_file(layer)
        if path not in out:
            out.append(path)
    if not out:
        raise Refused("choose the Sentinel-2 revisit layers that cover the area")
    return out


def vector_kind_problem(layer: Optional[QgsVectorLayer], kind: str) -> Optional[str]:
    """Why ``layer`` cannot serve as the ``kind`` layer ("buildings" / "roads"), or None."""
    if layer is None:
        return f"choose a {kind} layer"
    if not isinstance(layer, QgsVectorLayer) or not layer.isValid():
        return f"'{layer.name()}' is not a valid vector layer"
    geom = layer.geometryType()
    if kind == "buildings" and geom != QgsWkbTypes.GeometryType.PolygonGeometry:
        return f"'{layer.name()}' holds {QgsWkbTypes.geometryDisplayString(geom).lower()}s; buildings must be polygons"
    if kind == "roads" and geom not in (QgsWkbTypes.GeometryType.LineGeometry,
                                        QgsWkbTypes.GeometryType.PolygonGeometry):
        return f"'{layer.name()}' holds {QgsWkbTypes.geometryDisplayString(geom).lower()}s; roads must be lines"
    if layer.featureCount() == 0:
        return f"'{layer.name()}' has no features; export the {kind} of the area (e.g. with QuickOSM) first"
    return None


def export_vector(layer: Optional[QgsVectorLayer], kind: str, path: Path) -> Path:
    """Write ``layer`` (its visible features, its own CRS) as a one-layer GeoPackage at ``path``."""
    problem = vector_kind_problem(layer, kind)
    if problem:
        raise Refused(problem)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = kind
    error, message, *_ = QgsVectorFileWriter.writeAsVectorFormatV3(
        layer, str(path), QgsProject.instance().transformContext(), options)
    if error != QgsVectorFileWriter.WriterError.NoError:
        raise Refused(f"could not save '{layer.name()}' to {path}: {message}")
    return path


def mask_source(layer: Optional[QgsMapLayer], target: str) -> Optional[MaskSource]:
    """A building / road mask for the comparison: a raster file, or a vector layer's file and layer name."""
    if layer is None:
        return None
    if isinstance(layer, QgsVectorLayer):
        if layer.providerType() != "ogr":
            raise Refused(f"'{layer.name()}' ({target}) is a {layer.providerType()} layer, not a file: "
                          "save it to a GeoPackage first")
        parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
        return MaskSource(str(parts.get("path") or layer.source()), "vector", parts.get("layerName") or None)
    return MaskSource(layer_file(layer), "raster")
