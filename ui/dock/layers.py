"""The dock's side of the layer tree: grid checks before a run, result layers (styled, grouped) after it.

Why here and not in the tabs: what a run did to the map must look the same
whichever tab (or the comparison) started it: an SR output takes its input's
stretch (or true colour when it names Sentinel-2's bands) and goes into the
input's group, its trust map and trust classes sit hidden above it, masks and
probabilities keep fixed colours. And before anything runs, the
Input box says what will happen to the layers (same grid? warped from degrees
to UTM? refused because it is a web service?), in the words written here.
Main thread only: these functions touch QgsProject.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    Qgis,
    QgsCoordinateTransform,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsMapLayer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)

from ..log import log
from ..sources import Refused, utm_crs_for_layer
from ..styles import (
    Stretch,
    add_s2_styles,
    apply_gray_stretch,
    layer_stretch,
    style_mask,
    style_probability,
    style_trust,
    style_trust_classes,
    style_vectors,
)

__all__ = [
    "InputSpec",
    "is_sr_output_layer",
    "group_for",
    "add_to_group",
    "describe_grid",
    "map_extent_in_grid",
    "style_output",
    "add_sr_layer",
    "add_s2_layer",
    "add_trust_layer",
    "add_trust_class_layer",
    "trust_note",
    "add_segmentation_layers",
]

Extent = Tuple[float, float, float, float]


@dataclass
class InputSpec:
    """What the Input box describes, read on the main thread."""

    mode: int
    layers: List[QgsRasterLayer]
    paths: List[str]
    band: Any  # 1-based index, or "all" (bands are dates)
    band_index: int  # the band whose stretch the output takes
    name: str
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def group_for(name: str) -> QgsLayerTreeGroup:
    """The top-level layer group called ``name`` (made at the top when missing)."""
    root = QgsProject.instance().layerTreeRoot()
    group = root.findGroup(name)
    return group if group is not None else root.insertGroup(0, name)


def add_to_group(layer: QgsMapLayer, group: QgsLayerTreeGroup, visible: bool = True) -> QgsLayerTreeLayer:
    QgsProject.instance().addMapLayer(layer, False)
    node = group.insertLayer(0, layer)
    node.setItemVisibilityChecked(visible)
    return node


# --------------------------------------------------------------------------- grid checks


def _pixel(layer: QgsRasterLayer) -> Tuple[float, float]:
    return layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()


def _close(a: QgsRectangle, b: QgsRectangle, px: float) -> bool:
    tol = abs(px) * 1e-3
    return (abs(a.xMinimum() - b.xMinimum()) <= tol and abs(a.yMinimum() - b.yMinimum()) <= tol
            and abs(a.xMaximum() - b.xMaximum()) <= tol and abs(a.yMaximum() - b.yMaximum()) <= tol)


def _close_px(a: Tuple[float, float], b: Tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) <= abs(b[0]) * 1e-6 and abs(a[1] - b[1]) <= abs(b[1]) * 1e-6


#: Ground pixel of this tool's x3 outputs (m), and the tolerance of core.io.checks.
_SR_PIXEL_M, _PIXEL_TOLERANCE = 10.0 / 3.0, 0.15


def is_sr_output_layer(layer: QgsRasterLayer) -> bool:
    """Whether a layer is a super-resolved output (this tool's scale metadata, or ~3.33 m pixels in metres).

    Such a layer is no Sentinel-2 revisit: the Super-resolve tab does not offer
    it among the revisits (issue 21). Reads the file's metadata only (GDAL), on
    the main thread.
    """
    metres = layer.crs().isValid() and not layer.crs().isGeographic()  # projected: metres in practice
    if metres and abs(abs(layer.rasterUnitsPerPixelX()) / _SR_PIXEL_M - 1.0) <= _PIXEL_TOLERANCE:
        return True
    path = layer.source().split("|")[0]
    try:
        from osgeo import gdal

        ds = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
        tags = (ds.GetMetadata() or {}) if ds is not None else {}
    except Exception:  # not a file GDAL opens (a WMS...): not ours
        return False
    return "SR_SCALE" in tags or "SR_MODEL" in tags


def describe_grid(layers: Sequence[QgsRasterLayer]) -> Tuple[List[str], List[str]]:
    """(notes, warnings) about the layers' CRS and grids, in the words the Input box shows."""
    notes: List[str] = []
    warnings: List[str] = []
    first = layers[0]
    crs = first.crs()
    if not crs.isValid():
        raise Refused(f"'{first.name()}' has no coordinate reference system; assign one "
                      "(Layer Properties > Source) before super-resolving")
    px, py = _pixel(first)
    unit = "deg" if crs.isGeographic() else "m"
    notes.append(f"{crs.authid() or 'custom CRS'}, pixel {px:.6g} x {py:.6g} {unit}, "
                 f"{first.width()} x {first.height()} px")
    if crs.isGeographic():
        utm = utm_crs_for_layer(first)
        warnings.append(f"'{first.name()}' is in degrees ({crs.authid()}): it will be warped to "
                        f"{utm.authid()} (UTM) first, so buildings keep their shape")
    different = []
    for lyr in layers[1:]:
        if not lyr.crs().isValid():
            raise Refused(f"'{lyr.name()}' has no coordinate reference system; assign one first")
        same = (lyr.crs() == crs and lyr.width() == first.width() and lyr.height() == first.height()
                and _close(lyr.extent(), first.extent(), px) and _close_px(_pixel(lyr), (px, py)))
        if not same:
            different.append(lyr.name())
    if len(layers) > 1:
        if different:
            warnings.append(f"{len(different)} revisit(s) on another grid ({', '.join(different)}): "
                            f"they will be resampled onto the grid of '{first.name()}'")
        else:
            notes.append(f"all {len(layers)} revisits share one grid")
    return notes, warnings


def map_extent_in_grid(iface: Any, layer: QgsRasterLayer) -> Extent:
    """The map view's extent in the grid the engine reads (the layer's CRS, or UTM for degrees)."""
    canvas = iface.mapCanvas()
    crs = utm_crs_for_layer(layer) if layer.crs().isGeographic() else layer.crs()
    src = canvas.mapSettings().destinationCrs()
    if not src.isValid():
        src = layer.crs()
    rect = QgsCoordinateTransform(src, crs, QgsProject.instance()).transformBoundingBox(canvas.extent())
    full = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance()).transformBoundingBox(layer.extent())
    inter = rect.intersect(full)
    if inter.isEmpty() or inter.width() <= 0 or inter.height() <= 0:
        raise Refused(f"the map view does not overlap '{layer.name()}'; zoom to the layer first")
    return (inter.xMinimum(), inter.yMinimum(), inter.xMaximum(), inter.yMaximum())


# --------------------------------------------------------------------------- result layers


def style_output(layer: QgsRasterLayer, stretch: Any, s2_stretches: Optional[Dict[int, Stretch]] = None,
                 ) -> Optional[Dict[int, Stretch]]:
    """True colour (false colour one click away) for a layer naming S-2's bands, else grey with ``stretch``.

    Returns the per-band stretches of a true-colour layer (None for grey), so a
    second output of the same area can be drawn with the very same ones.
    """
    used = add_s2_styles(layer, s2_stretches)
    if used is None:
        apply_gray_stretch(layer, stretch, 1)
    return used


def add_sr_layer(path: str, name: str, stretch: Any, group: QgsLayerTreeGroup) -> Optional[QgsRasterLayer]:
    """An SR output on top of ``group`` (see :func:`style_output`); None when it does not open."""
    layer = QgsRasterLayer(str(path), name)
    if not layer.isValid():
        return None
    style_output(layer, stretch)
    add_to_group(layer, group)
    return layer


def add_s2_layer(path: str, name: str, group: Optional[QgsLayerTreeGroup] = None) -> Optional[QgsRasterLayer]:
    """A product export or revisit stack, drawn in true colour (its clearest date for a stack); None if unreadable."""
    layer = QgsRasterLayer(str(path), name)
    if not layer.isValid():
        return None
    if add_s2_styles(layer) is None:
        apply_gray_stretch(layer, layer_stretch(layer, 1), 1)
    if group is None:
        QgsProject.instance().addMapLayer(layer)
    else:
        add_to_group(layer, group)
    return layer


def _add_hidden(layer: QgsRasterLayer, group: QgsLayerTreeGroup, at_top: bool) -> None:
    """Add a trust layer switched off, on top of ``group`` or after what it holds (the analyst turns it on)."""
    if at_top:
        add_to_group(layer, group, visible=False)
    else:
        QgsProject.instance().addMapLayer(layer, False)
        group.addLayer(layer).setItemVisibilityChecked(False)


def add_trust_layer(path: str, threshold: float, group: QgsLayerTreeGroup, name: str,
                    at_top: bool = True) -> Optional[QgsRasterLayer]:
    """A trust map as a hidden layer (red = disagrees with S-2): the analyst switches it on to check."""
    layer = QgsRasterLayer(str(path), name)
    if not layer.isValid():
        log(f"the trust map {path} could not be opened as a layer", Qgis.MessageLevel.Warning)
        return None
    style_trust(layer, threshold)
    _add_hidden(layer, group, at_top)
    return layer


def add_trust_class_layer(path: str, group: QgsLayerTreeGroup, name: str,
                          at_top: bool = True) -> Optional[QgsRasterLayer]:
    """The trust classes (orange uncertain, red likely invented, supported transparent) as a hidden layer."""
    layer = QgsRasterLayer(str(path), name)
    if not layer.isValid():
        log(f"the trust classes {path} could not be opened as a layer", Qgis.MessageLevel.Warning)
        return None
    style_trust_classes(layer)
    _add_hidden(layer, group, at_top)
    return layer


def trust_note(summary: Any) -> str:
    """The trust summary as the end of a message-bar line ('' without one)."""
    if summary is None:
        return ""
    note = (f"; trust map: mean disagreement {summary.mean_disagreement:.4f}, "
            f"{100 * summary.flagged_share:.1f} % of pixels above {summary.threshold:g}")
    shares = getattr(summary, "class_shares", None)
    if shares:
        note += (f"; {100 * shares.get('supported', 0.0):.0f} % supported, "
                 f"{100 * shares.get('uncertain', 0.0):.0f} % uncertain, "
                 f"{100 * shares.get('invented', 0.0):.0f} % likely invented")
    return note


def add_segmentation_layers(result: Any, source_id: str, source_name: str) -> List[QgsMapLayer]:
    """Masks (shown), probabilities (hidden) and polygons of a segmentation, in the source layer's group."""
    root = QgsProject.instance().layerTreeRoot()
    node = root.findLayer(source_id)
    parent = node.parent() if node is not None else None
    group = parent if isinstance(parent, QgsLayerTreeGroup) and parent is not root else group_for(source_name)
    added: List[QgsMapLayer] = []
    for band, target in enumerate(result.targets, start=1):
        if result.mask_path:
            mask = QgsRasterLayer(str(result.mask_path), f"{target} mask ({source_name})")
            style_mask(mask, target, band)
            add_to_group(mask, group)
            added.append(mask)
        if result.prob_path:
            prob = QgsRasterLayer(str(result.prob_path), f"{target} probability ({source_name})")
            style_probability(prob, target, band)
            add_to_group(prob, group, visible=False)  # the mask is the answer; this is for a closer look
            added.append(prob)
        if result.vectors_path:
            vec = QgsVectorLayer(f"{result.vectors_path}|layername={target}", f"{target} polygons", "ogr")
            if vec.isValid():
                style_vectors(vec, target)
                add_to_group(vec, group)
                added.append(vec)
    return added
