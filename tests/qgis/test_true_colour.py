"""4-band outputs in QGIS: true colour found by band name, false colour one click away, a sidecar style for
drag-and-drop, and polygons drawn by whether the 10 m input supports them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

BANDS = ("B02", "B03", "B04", "B08")


def write_rgbn(path: Path, order=BANDS, px: float = 10 / 3, scaled: bool = True, size: int = 90) -> Path:
    """A 4-band uint16 GeoTIFF like the plugin's outputs: bands named, DN with reflectance scale/offset."""
    rng = np.random.default_rng(3)
    base = {"B02": 1400, "B03": 1800, "B04": 2200, "B08": 4200}  # distinct brightness per band
    data = np.stack([base[b] + rng.integers(0, 1500, (size, size)) for b in order]).astype("uint16")
    data[:, :4, :4] = 0  # a little nodata
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=len(order), dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 6000000, px, px), nodata=0) as ds:
        ds.write(data)
        ds.descriptions = tuple(order)
        if scaled:
            ds.scales = (1e-4,) * len(order)
            ds.offsets = (-0.1,) * len(order)
        ds.update_tags(SR_SCALE="3", SR_MODEL="test")
    return path


def _bands(renderer):
    return renderer.redBand(), renderer.greenBand(), renderer.blueBand()


def reference_cut(path: Path, band: int, cut=(0.02, 0.98)):
    """The 2-98 % cut of every valid pixel of ``band``, scale and offset applied: what QGIS's cut approximates."""
    with rasterio.open(path) as ds:
        data = ds.read(band, masked=True)
        values = data.compressed().astype("float64") * ds.scales[band - 1] + ds.offsets[band - 1]
    return tuple(float(v) for v in np.quantile(values, cut))


def qgis_cut(layer, band):
    """QGIS's own cumulative cut, or None where this QGIS cannot measure it (NaN on 3.44 for scaled uint16)."""
    lo, hi = layer.dataProvider().cumulativeCut(band, 0.02, 0.98, layer.extent(), 250000)
    return (lo, hi) if np.isfinite([lo, hi]).all() and hi > lo else None


def test_dock_draws_a_four_band_output_in_true_colour_with_false_colour_in_the_styles_menu(qh, clean_qgis, tmp_path):
    from qgis.core import QgsMultiBandColorRenderer, QgsSingleBandGrayRenderer

    layers = qh.ui("dock.layers")
    styles = qh.ui("styles")
    group = layers.group_for("outputs")
    out = layers.add_sr_layer(str(write_rgbn(tmp_path / "sr.tif")), "SR", (0.0, 0.3), group)
    renderer = out.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    assert _bands(renderer) == (3, 2, 1)  # R = B04, G = B03, B = B02
    assert renderer.minMaxOrigin().limits() == styles.CUMULATIVE_CUT_LIMIT
    for band, ce in zip(_bands(renderer), (renderer.redContrastEnhancement(), renderer.greenContrastEnhancement(),
                                           renderer.blueContrastEnhancement())):
        lo, hi = ce.minimumValue(), ce.maximumValue()
        assert 0.0 < lo < hi < 0.6  # reflectance: the bands' scale and offset applied (not NaN, not +-3.4e38)
        assert (lo, hi) == pytest.approx(qgis_cut(out, band) or reference_cut(tmp_path / "sr.tif", band),
                                         abs=0.05 * (hi - lo))
    manager = out.styleManager()
    assert set(manager.styles()) == {styles.TRUE_COLOUR_STYLE, styles.FALSE_COLOUR_STYLE}
    assert manager.currentStyle() == styles.TRUE_COLOUR_STYLE
    assert manager.setCurrentStyle(styles.FALSE_COLOUR_STYLE)
    assert _bands(out.renderer()) == (4, 3, 2)  # R = B08, G = B04, B = B03
    assert manager.setCurrentStyle(styles.TRUE_COLOUR_STYLE)
    assert _bands(out.renderer()) == (3, 2, 1)

    # by name, not by position: the same bands in another order
    shuffled = layers.add_sr_layer(str(write_rgbn(tmp_path / "shuffled.tif", ("B08", "B04", "B03", "B02"))),
                                   "shuffled", None, group)
    assert _bands(shuffled.renderer()) == (2, 3, 4)
    # a one-band output keeps the input's grey stretch
    one = qh.write_tif(tmp_path / "one.tif", (qh.smooth_image(30, 30, 1) * 1e4).astype("uint16"), px=10 / 3)
    grey = layers.add_sr_layer(str(one), "one band", (1000.0, 3000.0), group)
    assert isinstance(grey.renderer(), QgsSingleBandGrayRenderer)
    assert grey.renderer().contrastEnhancement().maximumValue() == pytest.approx(3000.0)
    assert grey.styleManager().styles() == [grey.styleManager().currentStyle()]


def test_sidecar_style_opens_a_plain_layer_in_true_colour(tmp_path):
    from qgis.core import QgsMultiBandColorRenderer, QgsRasterLayer

    from core.io.qgis_style import MARKER, style_path_for, write_composite_style

    raster = write_rgbn(tmp_path / "out.tif", ("B08", "B02", "B03", "B04"))
    plain = QgsRasterLayer(str(raster), "before")
    assert _bands(plain.renderer()) == (1, 2, 3)  # QGIS's own guess: B08 drawn as red
    style = write_composite_style(raster)
    assert style == style_path_for(raster) == tmp_path / "out.qml"
    layer = QgsRasterLayer(str(raster), "dragged in")  # what QGIS does on drag-and-drop: no plugin involved
    renderer = layer.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    assert _bands(renderer) == (4, 3, 2)
    for band, ce in ((4, renderer.redContrastEnhancement()), (2, renderer.blueContrastEnhancement())):
        for lo, hi in filter(None, (qgis_cut(layer, band), reference_cut(raster, band))):
            span = hi - lo
            assert ce.minimumValue() == pytest.approx(lo, abs=0.05 * span)  # sampled cut vs histogram / exact cut
            assert ce.maximumValue() == pytest.approx(hi, abs=0.05 * span)

    # a later one-band output of the same name: our stale style goes, so QGIS does not apply it to one band
    raster.unlink()
    qh_one = np.full((1, 20, 20), 2000, "uint16")
    with rasterio.open(raster, "w", driver="GTiff", width=20, height=20, count=1, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 6000000, 10 / 3, 10 / 3)) as ds:
        ds.write(qh_one)
    assert write_composite_style(raster) is None and not style.exists()
    # the analyst's own default style is never touched
    style.write_text("<qgis><!-- mine --></qgis>")
    write_rgbn(raster)
    assert write_composite_style(raster) is None and "mine" in style.read_text()
    assert MARKER not in style.read_text()


def test_the_stretch_comes_from_the_pixels_when_qgis_cannot_measure_it(qh, clean_qgis, tmp_path):
    """Issue 24, item 4: QGIS 3.44's cumulativeCut gives NaN on scaled uint16 bands, its renderer +-3.4e38.

    ``plausible_stretch`` is what decides that QGIS measured nothing; every
    QGIS gets the fallback checked here through it, on a real scaled file.
    """
    from qgis.core import QgsContrastEnhancement, QgsRasterLayer, QgsSingleBandGrayRenderer

    styles = qh.ui("styles")
    raster = write_rgbn(tmp_path / "scaled.tif")
    layer = QgsRasterLayer(str(raster), "scaled")
    assert layer.isValid()

    for lo, hi in ((float("nan"), float("nan")), (-3.4028235e38, 3.4028235e38), (0.0, float("inf")),
                   (0.2, 0.2), (0.3, 0.1), (None, 0.2)):
        assert styles.plausible_stretch(lo, hi) is None, (lo, hi)
    assert styles.plausible_stretch(0.05, 0.3) == (0.05, 0.3)

    assert styles.layer_file(layer) == str(raster)
    for band in (1, 3):
        measured = styles.data_cut(layer, band)
        expected = reference_cut(raster, band)
        assert measured == pytest.approx(expected, abs=1e-6)  # 90 px: the decimated read is every pixel
        assert 0.0 < measured[0] < measured[1] < 0.6
        assert styles.cumulative_stretch(layer, band) == pytest.approx(qgis_cut(layer, band) or measured)

    # a renderer QGIS could not fill (float32's extremes) is no stretch: the pixels' cut is used instead
    grey = QgsSingleBandGrayRenderer(layer.dataProvider(), 2)
    ce = QgsContrastEnhancement(layer.dataProvider().dataType(2))
    ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
    ce.setMinimumValue(-3.4028235e38)
    ce.setMaximumValue(3.4028235e38)
    grey.setContrastEnhancement(ce)
    layer.setRenderer(grey)
    lo, hi = styles.layer_stretch(layer, 2)
    assert 0.0 < lo < hi < 0.6
    assert (lo, hi) == pytest.approx(qgis_cut(layer, 2) or reference_cut(raster, 2), abs=0.05 * (hi - lo))


def test_polygons_are_solid_when_supported_and_dashed_when_not(qh, clean_qgis, tmp_path):
    from osgeo import ogr, osr
    from qgis.core import QgsRenderContext, QgsRuleBasedRenderer, QgsVectorLayer
    from qgis.PyQt.QtCore import Qt

    ogr.UseExceptions()  # as core/io/polygons.py does; GDAL >= 3.9 warns (FutureWarning) when neither is chosen
    styles = qh.ui("styles")
    path = tmp_path / "polygons.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    for target in ("buildings", "roads"):
        lyr = ds.CreateLayer(target, srs, ogr.wkbPolygon)
        lyr.CreateField(ogr.FieldDefn("supported", ogr.OFTInteger))
        lyr.CreateField(ogr.FieldDefn("trust_class", ogr.OFTReal))
        for i, supported in enumerate((1, 0)):
            feat = ogr.Feature(lyr.GetLayerDefn())
            feat.SetField("supported", supported)
            x = 500000 + 50 * i
            feat.SetGeometry(ogr.CreateGeometryFromWkt(
                f"POLYGON(({x} 6000000,{x + 20} 6000000,{x + 20} 5999980,{x} 5999980,{x} 6000000))"))
            lyr.CreateFeature(feat)
    ds = None
    for target, rgb in (("buildings", (230, 30, 30)), ("roads", (255, 215, 0))):
        layer = QgsVectorLayer(f"{path}|layername={target}", target, "ogr")
        assert layer.isValid()
        styles.style_vectors(layer, target)
        renderer = layer.renderer()
        assert isinstance(renderer, QgsRuleBasedRenderer)
        context = QgsRenderContext()
        renderer.startRender(context, layer.fields())
        try:
            drawn = {}
            for feat in layer.getFeatures():
                (symbol,) = renderer.symbolsForFeature(feat, context)
                drawn[feat["supported"]] = symbol.symbolLayer(0)
        finally:
            renderer.stopRender(context)
        solid, hollow = drawn[1], drawn[0]
        assert solid.fillColor().alpha() > 0 and (solid.fillColor().red(), solid.fillColor().green()) == rgb[:2]
        assert solid.strokeStyle() == Qt.PenStyle.SolidLine
        assert hollow.brushStyle() == Qt.BrushStyle.NoBrush  # hollow
        assert hollow.strokeStyle() == Qt.PenStyle.DashLine
        assert (hollow.strokeColor().red(), hollow.strokeColor().green()) == rgb[:2]
        labels = [r.label() for r in renderer.rootRule().children()]
        assert any("supported" in t for t in labels) and any("not supported" in t for t in labels)
