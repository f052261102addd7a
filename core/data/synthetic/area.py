"""A synthetic scene written the way an analyst has their area: revisit GeoTIFFs plus OSM-like vectors.

Why: the area fine-tune (:mod:`core.data.area_tiles`, :mod:`core.area`) reads
*files* an analyst has (Sentinel-2 revisits, a QuickOSM export of buildings and
roads, in any CRS), never an HR image. Tests and the demo need such files with
a known truth, so this module writes a :class:`~core.data.scene.Scene` from
:func:`core.data.synthetic.make_scene` in that form:

- one GeoTIFF per revisit, uint16 digital numbers (reflectance / 1e-4), nodata
  0, band descriptions from the scene (``"B8"``);
- ``buildings.gpkg``: one polygon per connected footprint of the exact
  buildings mask (``rasterio.features.shapes``, edges on HR pixel edges), tagged
  ``building=yes``;
- ``roads.gpkg``: one line per road segment the generator drew, with an OSM
  ``highway`` class *and* the exact ``width`` tag in metres. Buffering a line by
  half its width and burning pixel centres is exactly the generator's rule
  (a pixel is road when its centre lies within width/2 of the segment), so
  rasterizing the file back reproduces the scene's roads mask up to the
  polygonal approximation of the round caps.

Vectors are optionally reprojected (e.g. to ``EPSG:4326``, as QuickOSM exports)
vertex by vertex, so reprojecting them back is exact to float precision.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from rasterio.features import shapes
from rasterio.warp import transform_geom

from ...io.atomic import atomic_write
from ...io.geo import apply
from ..scene import Scene, SceneError, same_crs, to_dn, write_geotiff

__all__ = ["AreaFiles", "write_area_files", "write_vector_layer", "ROAD_CLASSES"]

PathLike = Union[str, os.PathLike]
Feature = Tuple[Dict[str, Any], Dict[str, Any]]  # (GeoJSON geometry, properties)

#: The synthetic generator's road kinds -> an OSM ``highway`` class of about that width.
ROAD_CLASSES: Dict[str, str] = {
    "highway": "primary",
    "main": "secondary",
    "street": "residential",
    "alley": "service",
    "track": "track",
}


@dataclass
class AreaFiles:
    """The files of a synthetic area, as an analyst would hand them to ``area prepare``."""

    revisits: List[Path]
    buildings: Path
    roads: Path
    crs: str  # the vectors' CRS


def write_area_files(
    scene: Scene, folder: PathLike, vector_crs: Optional[str] = None, empty_roads: bool = False
) -> AreaFiles:
    """Write ``scene``'s revisits and its buildings/roads vectors into ``folder`` (see the module docstring).

    ``vector_crs``: CRS of the GeoPackages (default: the scene's own).
    ``empty_roads``: write a roads line layer without any feature (to test refusals).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    crs = vector_crs or scene.crs
    if not scene.crs:
        raise SceneError(f"scene {scene.name!r} has no CRS; an area needs georeferenced files")
    revisits = _write_revisits(scene, folder)
    buildings = write_vector_layer(folder / "buildings.gpkg", _reproject(_building_features(scene), scene.crs, crs),
                                   crs, "buildings", geometry_type="Polygon")
    road_feats = [] if empty_roads else _reproject(_road_features(scene), scene.crs, crs)
    roads = write_vector_layer(folder / "roads.gpkg", road_feats, crs, "roads", geometry_type="LineString")
    return AreaFiles(revisits, buildings, roads, crs)


def _write_revisits(scene: Scene, folder: Path) -> List[Path]:
    """One uint16 DN GeoTIFF per revisit, named by date when the scene has dates."""
    paths = []
    for t in range(scene.frames):
        stem = f"S2_{scene.dates[t].replace('-', '')}" if scene.dates else "S2"
        path = folder / f"{stem}_t{t:02d}.tif"
        dn = to_dn(scene.lr[t], scene.lr_valid[t], scene.radiometric_scale)
        paths.append(write_geotiff(path, dn, scene.crs, scene.lr_transform, nodata=0, descriptions=scene.bands))
    return paths


def _building_features(scene: Scene) -> List[Feature]:
    """Footprint polygons of the exact buildings mask, their edges on the HR pixel edges."""
    mask = np.asarray(scene.masks.get("buildings", np.zeros(scene.hr_shape, bool)), dtype=bool)
    src = mask.astype(np.uint8)
    return [(dict(geom), {"building": "yes"})
            for geom, _v in shapes(src, mask=mask, connectivity=4, transform=scene.hr_transform)]


def _road_features(scene: Scene) -> List[Feature]:
    """The generator's road segments as lines with an OSM class and their exact width in metres.

    The segments live in ``scene.extra["_roads"]`` (in memory only: HR pixel
    coordinates, pixel centres at +0.5), which is where the roads mask came from.
    """
    segments = scene.extra.get("_roads")
    if segments is None:
        raise SceneError(
            f"scene {scene.name!r} carries no road segments (extra['_roads']); use a scene straight from "
            "core.data.synthetic.towns.make_scene, not one read back from disk"
        )
    pixel_m = abs(float(scene.hr_transform.a))
    feats = []
    for seg in segments:
        x0, y0 = apply(scene.hr_transform, float(seg["x0"]), float(seg["y0"]))
        x1, y1 = apply(scene.hr_transform, float(seg["x1"]), float(seg["y1"]))
        line = {"type": "LineString", "coordinates": [[x0, y0], [x1, y1]]}
        props = {"highway": ROAD_CLASSES.get(str(seg.get("kind")), "road"),
                 "width": f"{float(seg['width']) * pixel_m:.4f}"}  # a text tag, as in OSM
        feats.append((line, props))
    return feats


def _reproject(features: Sequence[Feature], src: str, dst: str) -> List[Feature]:
    if same_crs(src, dst):
        return list(features)
    return [(dict(transform_geom(src, dst, geom)), props) for geom, props in features]


# ---------------------------------------------------------------------- writing vectors
def write_vector_layer(
    path: PathLike,
    features: Sequence[Feature],
    crs: str,
    layer_name: str,
    geometry_type: Optional[str] = None,
) -> Path:
    """Write ``features`` (GeoJSON geometry, properties) as a one-layer GeoPackage; returns ``path``.

    ``crs``: "EPSG:xxxx" or WKT; coordinates are x/y (longitude/latitude in a
    geographic CRS, the GIS order). ``geometry_type``: the layer's declared type
    (default: that of the features when they share one); an empty layer needs
    it so that QGIS knows it is a line or polygon layer. Written under a
    temporary name and renamed, replacing an existing file.
    """
    try:
        from osgeo import ogr, osr
    except ImportError:
        raise SceneError("writing vector files needs GDAL's Python bindings (osgeo, shipped with QGIS)") from None
    path = Path(path)
    gtype = geometry_type or _common_type(features)
    srs = osr.SpatialReference()
    if srs.SetFromUserInput(crs) != 0:
        raise SceneError(f"{path}: cannot understand the CRS {crs!r}")
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    with atomic_write(path, suffix=".gpkg") as tmp:  # the GPKG driver chooses its format by the extension
        try:
            ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
            if ds is None:
                raise SceneError(f"{path}: cannot create a GeoPackage there")
            layer = ds.CreateLayer(layer_name, srs, getattr(ogr, f"wkb{gtype}", ogr.wkbUnknown) if gtype else ogr.wkbUnknown)
            fields = _field_types(features)
            for name, kind in fields.items():
                layer.CreateField(ogr.FieldDefn(name, kind))
            defn = layer.GetLayerDefn()
            layer.StartTransaction()
            for geom, props in features:
                feat = ogr.Feature(defn)
                for name, value in props.items():
                    if value is not None:
                        feat.SetField(name, value)
                g = ogr.CreateGeometryFromJson(json.dumps(geom))
                if g is None:
                    raise SceneError(f"{path}: not a valid GeoJSON geometry: {json.dumps(geom)[:120]}")
                feat.SetGeometry(g)
                if layer.CreateFeature(feat) != 0:
                    raise SceneError(f"{path}: OGR refused a {geom.get('type')} feature in layer {layer_name!r}")
            layer.CommitTransaction()
        finally:
            ds = None  # closes (and flushes) the file before it is renamed, or deleted after a failure
    return path


def _common_type(features: Sequence[Feature]) -> Optional[str]:
    types = {geom.get("type") for geom, _p in features}
    return types.pop() if len(types) == 1 else None


def _field_types(features: Sequence[Feature]) -> Dict[str, int]:
    """OGR field type per property name (first non-null value decides; text when mixed)."""
    from osgeo import ogr

    out: Dict[str, int] = {}
    for _g, props in features:
        for name, value in props.items():
            if value is None:
                continue
            kind = (ogr.OFTInteger64 if isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                    else ogr.OFTReal if isinstance(value, (float, np.floating)) else ogr.OFTString)
            if out.setdefault(name, kind) != kind:
                out[name] = ogr.OFTString
    return out
