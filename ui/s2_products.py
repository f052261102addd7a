"""Sentinel-2 products as the QGIS face sees them: names, CRS, file filters and what an export did.

Why one module: the dock's product dialog and the Processing algorithms both
take products that are not layers (a ``.SAFE`` folder, its ``.zip``, an
``MTD_MSIL2A.xml``) beside plain rasters, and both must say the same things
about them: what a product is called, which CRS its 10 m grid is in (an
extent drawn on the map must be converted into it), and what an export
decided (offset rule, SCL classes masked, clear share), which the engine
records in the output's tags. The engine's readers are imported only when
called (they need rasterio); nothing here touches QgsProject.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from ..core.io.qgis_style import write_composite_style
from .sources import Refused

__all__ = ["FILE_FILTER", "product_label", "is_product_path", "input_crs", "extent_in_crs", "export_tags",
           "export_notes", "stack_notes", "write_default_style"]

Extent = Tuple[float, float, float, float]

#: What the file dialogs offer: products (zip, metadata XML) and rasters (GeoTIFF, JPEG 2000).
FILE_FILTER = ("Sentinel-2 products and rasters (*.zip *.ZIP *.xml *.XML *.tif *.TIF *.tiff *.TIFF *.jp2 *.JP2);;"
               "All files (*)")


def is_product_path(path: str) -> bool:
    """A ``.SAFE`` (or any) folder, a ``.zip`` or an ``MTD_MSIL1C/2A.xml``: a product, not a raster."""
    from ..core.io.s2_product import is_product

    return bool(is_product(path))


def product_label(path: str) -> str:
    """A short name: ``S2B_MSIL2A_20230512T095559_N0509_...`` for a product (folder, zip or MTD file), else the stem."""
    p = Path(path)
    if p.name.upper().startswith("MTD_MSIL") and p.suffix.lower() == ".xml":
        p = p.parent
    name = p.name
    for suffix in (".SAFE", ".safe", ".zip", ".ZIP"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return p.stem


def input_crs(path: str) -> QgsCoordinateReferenceSystem:
    """The CRS of an input's 10 m grid: a raster's own, a product's from its first 10 m band (metadata only)."""
    source = path
    if is_product_path(path):
        from ..core.io.s2_product import open_product

        try:
            product = open_product(path)
        except ValueError as exc:  # core.jobs.InputError: worded for the analyst
            raise Refused(str(exc)) from None
        bands = product.band_paths
        source = bands.get("B08") or next(iter(bands.values()), "")
    layer = QgsRasterLayer(source, "crs probe", "gdal")
    if not layer.isValid() or not layer.crs().isValid():
        raise Refused(f"{Path(path).name}: cannot read its coordinate reference system")
    return layer.crs()


def extent_in_crs(rect: QgsRectangle, rect_crs: QgsCoordinateReferenceSystem,
                  crs: QgsCoordinateReferenceSystem) -> Extent:
    """``rect`` (in ``rect_crs``) as minx, miny, maxx, maxy in ``crs`` (its bounding box)."""
    if rect_crs.isValid() and rect_crs != crs:
        rect = QgsCoordinateTransform(rect_crs, crs, QgsProject.instance()).transformBoundingBox(rect)
    if rect.isEmpty() or rect.width() <= 0 or rect.height() <= 0:
        raise Refused("the chosen area is empty")
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())


def export_tags(path: os.PathLike) -> Dict[str, str]:
    """The dataset tags of an export (``S2_*``, see ``core.io.s2_product.export_product``)."""
    import rasterio

    with rasterio.open(path) as ds:
        return dict(ds.tags(), BAND_COUNT=str(ds.count))


def export_notes(path: os.PathLike) -> List[str]:
    """What an export decided, from the tags the engine writes (``S2_*``): offset rule, clouds, clear share."""
    tags = export_tags(path)
    count = tags["BAND_COUNT"]
    name = tags.get("S2_PRODUCT") or Path(path).stem
    notes = [f"{name}: {tags.get('S2_LEVEL', '?')} of {tags.get('S2_DATE', '?')}, processing baseline "
             f"{tags.get('S2_BASELINE', '?')}, bands {tags.get('S2_BANDS', '?')} ({count} in the file)"]
    if tags.get("S2_OFFSET_RULE"):
        notes.append(f"{name}: {tags['S2_OFFSET_RULE']}")
    if tags.get("S2_SCL_MASKED"):
        clear = tags.get("S2_CLEAR")
        share = f"; {100 * float(clear):.1f} % of the area is clear" if clear else ""
        notes.append(f"{name}: SCL classes masked as nodata: {tags['S2_SCL_MASKED']}{share}")
    return notes


def stack_notes(result) -> List[str]:
    """A stack's decisions for the log: the engine's own messages, then the dates in the file's order."""
    notes = list(getattr(result, "messages", []) or [])
    dates = list(getattr(result, "dates", []) or [])
    bands = list(getattr(result, "bands", []) or [])
    if dates:
        notes.append(f"stack: {len(dates)} date(s) x {len(bands)} band(s) ({', '.join(bands)}), clearest first: "
                     + ", ".join(dates))
    return notes


def write_default_style(path: os.PathLike) -> Optional[str]:
    """``<path>.qml`` (true colour by band name) beside an export or a stack, so QGIS opens it in true colour
    wherever it is loaded from (Processing's result layers, a later drag-and-drop); the sentence for the log,
    or None when the raster does not name B02, B03 and B04. A failure to write it is said, never raised."""
    try:
        style = write_composite_style(path)
    except OSError as exc:
        return f"could not write a QGIS style beside {Path(path).name}: {exc}"
    return f"wrote {style.name}: QGIS opens {Path(path).name} in true colour" if style else None
