"""QGIS layers -> the files the area fine-tune reads (revisit rasters, buildings/roads GeoPackages).

Why: the analyst picks *layers* (a QuickOSM result is often a temporary
layer, may carry a filter, or be one layer of a multi-layer GeoPackage), while
the headless engine reads *files*. Vector layers are therefore always exported
as they are shown (filter applied, own CRS kept: the engine reprojects) into the
run folder, so the run is reproducible from its folder alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional

from qgis.core import QgsProject, QgsVectorFileWriter, QgsVectorLayer, QgsWkbTypes

from .tasks import Refused, layer_file

__all__ = ["revisit_files", "export_vector", "vector_kind_problem"]


def revisit_files(layers: Iterable) -> List[str]:
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
