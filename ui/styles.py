"""Renderers for the plugin's layers: SR outputs stretched like their input, masks in fixed colours.

Why it matters: an SR output shown with QGIS's default per-layer stretch looks
brighter or darker than its input for reasons that have nothing to do with the
model, and a baseline and a task-driven output stretched independently cannot
be compared by eye. So every output takes *one* stretch: the input's (an SR
output keeps its input's units, see ``core.inference``). Buildings are always
red and roads always yellow, semi-transparent so the image shows through;
polygons the 10 m input does not support are hollow and dashed. A layer that
names Sentinel-2's bands (a 4-band output, a product export, a revisit stack)
is drawn in true colour found by band *name* (QGIS's default would draw B02,
the blue band, as red), with false colour one click away in its Styles menu.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsFillSymbol,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsRuleBasedRenderer,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from .compat import CUMULATIVE_CUT_LIMIT, band_description, renderer_band

try:
    from ..core.io.qgis_style import CUMULATIVE_CUT, FALSE_COLOUR, TRUE_COLOUR, band_cut, composite_bands
except ImportError:  # imported as a top-level ``ui`` package (scripts/demo.py puts the repository on sys.path)
    from core.io.qgis_style import CUMULATIVE_CUT, FALSE_COLOUR, TRUE_COLOUR, band_cut, composite_bands

#: Fixed colours per target (RGB); alpha is set per use.
TARGET_COLOURS: Dict[str, Tuple[int, int, int]] = {
    "buildings": (230, 30, 30),
    "roads": (255, 215, 0),
}
_OTHER = (40, 160, 255)

PROBABILITY_OPACITY = 0.75
MASK_ALPHA = 150
VECTOR_FILL_ALPHA = 90

Stretch = Tuple[float, float]

#: Magnitude from which a stretch bound is no measurement: QGIS reports float32's extremes (about 3.4e38)
#: for a band it has no statistics of.
NO_STATISTICS = 1e38
#: Pixels QGIS samples for a cumulative cut (its own default).
CUT_SAMPLE = 250000


def target_colour(target: str, alpha: int = 255) -> QColor:
    r, g, b = TARGET_COLOURS.get(str(target).lower(), _OTHER)
    return QColor(r, g, b, alpha)


def plausible_stretch(lo: object, hi: object) -> Optional[Stretch]:
    """``(lo, hi)`` when it is a measured stretch: both finite, neither float32's extreme, ``hi > lo``; else None.

    Why: QGIS answers "no statistics" with numbers, not an error: NaN from
    ``cumulativeCut`` (QGIS 3.44 on scaled integer bands) and +-3.4e38 in a
    contrast enhancement it could not fill. Used as a stretch, either draws
    the whole layer in one colour.
    """
    try:
        low, high = float(lo), float(hi)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(low) and math.isfinite(high)) or max(abs(low), abs(high)) >= NO_STATISTICS:
        return None
    return (low, high) if high > low else None


def _enhancement_range(ce: Optional[QgsContrastEnhancement]) -> Optional[Stretch]:
    if ce is None:
        return None
    if ce.contrastEnhancementAlgorithm() == QgsContrastEnhancement.ContrastEnhancementAlgorithm.NoEnhancement:
        return None
    return plausible_stretch(ce.minimumValue(), ce.maximumValue())


def layer_file(layer: QgsRasterLayer) -> Optional[str]:
    """The file a GDAL raster layer reads (its source without QGIS's ``|option`` suffixes); None for others.

    Quiet on purpose, unlike ``sources.layer_file`` (which refuses with a
    sentence for the analyst): a layer without a file just gets no fallback stretch.
    """
    if layer.providerType() != "gdal":
        return None
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = parts.get("path") or layer.source().split("|")[0]
    return str(path) if path else None


def data_cut(layer: QgsRasterLayer, band: int, cut: Stretch = CUMULATIVE_CUT) -> Optional[Stretch]:
    """The band's cumulative cut measured on the file's pixels (decimated read, NumPy quantiles).

    For when QGIS cannot measure it (see :func:`plausible_stretch`). In the
    values QGIS draws: the band's scale and offset applied, nodata left out.
    None when the layer is not a file GDAL reads or the file gives nothing.
    """
    path = layer_file(layer)
    if not path:
        return None
    try:
        found = band_cut(path, band, cut)
    except Exception:  # noqa: BLE001 - a stretch is a nicety; drawing must go on without one
        return None
    return plausible_stretch(*found) if found is not None else None


def cumulative_stretch(layer: QgsRasterLayer, band: int, cut: Stretch = CUMULATIVE_CUT) -> Optional[Stretch]:
    """The band's cumulative cut (QGIS's default 2-98 %) over the whole layer.

    QGIS's own histogram cut when it gives one, else measured on the file's
    pixels (:func:`data_cut`): QGIS 3.44 returns NaN for scaled uint16 bands.
    """
    provider = layer.dataProvider()
    if provider is None or band < 1 or band > layer.bandCount():
        return None
    lo, hi = provider.cumulativeCut(band, cut[0], cut[1], layer.extent(), CUT_SAMPLE)
    return plausible_stretch(lo, hi) or data_cut(layer, band, cut)


def layer_stretch(layer: QgsRasterLayer, band: int = 1) -> Optional[Stretch]:
    """The (min, max) the layer's renderer uses to draw ``band``, or the band's 2-98 % cut.

    Reads the renderer first so an analyst's own stretch is what the output
    gets; falls back to QGIS's default cumulative cut of that band when the
    renderer does not draw it (e.g. an RGB renderer on other bands).
    """
    renderer = layer.renderer()
    found: Optional[Stretch] = None
    if isinstance(renderer, QgsSingleBandGrayRenderer) and renderer_band(renderer) == band:
        found = _enhancement_range(renderer.contrastEnhancement())
    elif isinstance(renderer, QgsMultiBandColorRenderer):
        for b, ce in ((renderer.redBand(), renderer.redContrastEnhancement()),
                      (renderer.greenBand(), renderer.greenContrastEnhancement()),
                      (renderer.blueBand(), renderer.blueContrastEnhancement())):
            if b == band:
                found = _enhancement_range(ce)
                break
    elif isinstance(renderer, QgsSingleBandPseudoColorRenderer) and renderer_band(renderer) == band:
        found = plausible_stretch(renderer.classificationMin(), renderer.classificationMax())
    if found is not None:
        return found
    return cumulative_stretch(layer, band)


def apply_gray_stretch(layer: QgsRasterLayer, stretch: Optional[Stretch], band: int = 1) -> None:
    """Draw ``band`` of ``layer`` in grey with a min-max stretch over ``stretch``."""
    renderer = QgsSingleBandGrayRenderer(layer.dataProvider(), band)
    if stretch is not None:
        ce = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
        ce.setMinimumValue(stretch[0])
        ce.setMaximumValue(stretch[1])
        renderer.setContrastEnhancement(ce)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def match_stretch(source: QgsRasterLayer, source_band: int, targets: Sequence[QgsRasterLayer]) -> Optional[Stretch]:
    """Give every target layer (band 1) the stretch ``source`` uses for ``source_band``."""
    stretch = layer_stretch(source, source_band)
    for layer in targets:
        apply_gray_stretch(layer, stretch, 1)
    return stretch


def style_probability(layer: QgsRasterLayer, target: str, band: int = 1) -> None:
    """Probability 0..1 as the target's colour, transparent at 0 and strong at 1."""
    ramp = QgsColorRampShader(0.0, 1.0)
    ramp.setColorRampType(QgsColorRampShader.Type.Interpolated)
    ramp.setColorRampItemList([
        QgsColorRampShader.ColorRampItem(0.0, target_colour(target, 0), "0"),
        QgsColorRampShader.ColorRampItem(0.5, target_colour(target, 70), "0.5"),
        QgsColorRampShader.ColorRampItem(1.0, target_colour(target, 230), "1"),
    ])
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    layer.setRenderer(renderer)
    layer.setOpacity(PROBABILITY_OPACITY)
    layer.triggerRepaint()


def style_mask(layer: QgsRasterLayer, target: str, band: int = 1) -> None:
    """Mask 1 = target in the target's colour; background (0) and nodata (255) transparent."""
    classes = [QgsPalettedRasterRenderer.Class(1, target_colour(target, MASK_ALPHA), target)]
    renderer = QgsPalettedRasterRenderer(layer.dataProvider(), band, classes)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def _rgba(colour: QColor) -> str:
    return f"{colour.red()},{colour.green()},{colour.blue()},{colour.alpha()}"


def solid_symbol(target: str) -> QgsFillSymbol:
    """An object the 10 m input supports: filled with the target's colour, solid outline."""
    return QgsFillSymbol.createSimple({"color": _rgba(target_colour(target, VECTOR_FILL_ALPHA)),
                                       "outline_color": _rgba(target_colour(target, 255)), "outline_width": "0.3"})


def hollow_symbol(target: str) -> QgsFillSymbol:
    """An object the 10 m input does not support: no fill, a dashed outline in the target's colour."""
    return QgsFillSymbol.createSimple({"color": "0,0,0,0", "style": "no", "outline_style": "dash",
                                       "outline_color": _rgba(target_colour(target, 255)), "outline_width": "0.4"})


#: The field the engine writes on every polygon (1 = the 10 m input supports the object, see
#: core/inference/support.py), and the rule labels the legend shows.
SUPPORTED_FIELD = "supported"
SUPPORTED_LABEL = "supported by the 10 m input"
UNSUPPORTED_LABEL = "not supported (dashed: check it)"


def style_vectors(layer: QgsVectorLayer, target: str) -> None:
    """Polygons in the target's colour: solid when ``supported`` = 1, hollow and dashed otherwise.

    Why two looks: an object the 10 m input does not support may be one the
    network invented; the analyst should see at a glance which ones to check.
    A layer without the field (made by an older version) gets the solid look.
    """
    if layer.fields().indexOf(SUPPORTED_FIELD) < 0:
        layer.setRenderer(QgsSingleSymbolRenderer(solid_symbol(target)))
        layer.triggerRepaint()
        return
    root = QgsRuleBasedRenderer.Rule(None)
    root.appendChild(QgsRuleBasedRenderer.Rule(solid_symbol(target), 0, 0, f'"{SUPPORTED_FIELD}" = 1',
                                               SUPPORTED_LABEL))
    root.appendChild(QgsRuleBasedRenderer.Rule(hollow_symbol(target), 0, 0,
                                               f'coalesce("{SUPPORTED_FIELD}", 0) <> 1', UNSUPPORTED_LABEL))
    layer.setRenderer(QgsRuleBasedRenderer(root))
    layer.triggerRepaint()


# --------------------------------------------------------------------------- 4-band Sentinel-2 outputs

#: Names of the two styles a 4-band layer gets in its style manager (the Layers panel's Styles menu).
TRUE_COLOUR_STYLE = "True colour (B04/B03/B02)"
FALSE_COLOUR_STYLE = "False colour (B08/B04/B03)"


def layer_band_names(layer: QgsRasterLayer) -> List[str]:
    """The band descriptions QGIS shows for each band ("Band 1: B02" when the file names it)."""
    provider = layer.dataProvider()
    return [band_description(provider, band) or provider.generateBandName(band)
            for band in range(1, layer.bandCount() + 1)]


def s2_composite(layer: QgsRasterLayer, combo: Sequence[str] = TRUE_COLOUR) -> Optional[Tuple[int, int, int]]:
    """Bands drawn as R, G, B for ``combo`` (S-2 band names), found by name; None when one is missing."""
    return composite_bands(layer_band_names(layer), combo)


def _enhancement(layer: QgsRasterLayer, band: int, stretch: Optional[Stretch]) -> QgsContrastEnhancement:
    ce = QgsContrastEnhancement(layer.dataProvider().dataType(band))
    ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
    if stretch is not None:
        ce.setMinimumValue(stretch[0])
        ce.setMaximumValue(stretch[1])
    return ce


def style_composite(layer: QgsRasterLayer, bands: Tuple[int, int, int],
                    stretches: Optional[Dict[int, Stretch]] = None) -> Dict[int, Stretch]:
    """Draw ``bands`` as R, G, B, each with a cumulative-cut stretch; returns band -> stretch used.

    ``stretches`` (band -> (min, max)) overrides the layer's own cut, so two
    outputs of one area (baseline and task-driven) can share one stretch.
    """
    used: Dict[int, Stretch] = {}
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), *bands)
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)
    for band, setter in zip(bands, setters):
        stretch = (stretches or {}).get(band) or cumulative_stretch(layer, band)
        if stretch is not None:
            used[band] = stretch
        setter(_enhancement(layer, band, stretch))
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(CUMULATIVE_CUT_LIMIT)
    origin.setCumulativeCutLower(CUMULATIVE_CUT[0])
    origin.setCumulativeCutUpper(CUMULATIVE_CUT[1])
    renderer.setMinMaxOrigin(origin)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return used


def add_s2_styles(layer: QgsRasterLayer, stretches: Optional[Dict[int, Stretch]] = None,
                  ) -> Optional[Dict[int, Stretch]]:
    """True colour now and false colour one click away, for a layer naming Sentinel-2's bands.

    Both become named styles of the layer's style manager, so the Layers
    panel's Styles menu switches between them; true colour is current. Returns
    the stretches used (band -> (min, max)), or None (nothing changed) when the
    layer does not name B02, B03 and B04.
    """
    true_bands = s2_composite(layer, TRUE_COLOUR)
    if true_bands is None:
        return None
    manager = layer.styleManager()
    used: Dict[int, Stretch] = {}
    false_bands = s2_composite(layer, FALSE_COLOUR)
    if false_bands is not None:
        used.update(style_composite(layer, false_bands, stretches))
        if FALSE_COLOUR_STYLE in manager.styles():
            manager.removeStyle(FALSE_COLOUR_STYLE)
        manager.addStyleFromLayer(FALSE_COLOUR_STYLE)
    used.update(style_composite(layer, true_bands, stretches))
    current = manager.currentStyle()
    if current != TRUE_COLOUR_STYLE:
        if TRUE_COLOUR_STYLE in manager.styles():
            manager.removeStyle(TRUE_COLOUR_STYLE)
        manager.renameStyle(current, TRUE_COLOUR_STYLE)
    return used


#: Trust maps: transparent where the SR output agrees with Sentinel-2, red where it does not.
TRUST_COLOUR = (220, 20, 20)


def style_trust(layer: QgsRasterLayer, threshold: float = 0.02, band: int = 1) -> None:
    """Disagreement (reflectance) from transparent at 0 through half-red at ``threshold`` to red at 5x it.

    Fixed breaks, not the layer's own min/max: the same colour means the same
    disagreement on every output, so two trust maps can be compared by eye.
    """
    r, g, b = TRUST_COLOUR
    top = 5.0 * threshold
    ramp = QgsColorRampShader(0.0, top)
    ramp.setColorRampType(QgsColorRampShader.Type.Interpolated)
    ramp.setColorRampItemList([
        QgsColorRampShader.ColorRampItem(0.0, QColor(r, g, b, 0), "0"),
        QgsColorRampShader.ColorRampItem(threshold / 2, QColor(r, g, b, 0), f"{threshold / 2:g}"),
        QgsColorRampShader.ColorRampItem(threshold, QColor(r, g, b, 120), f"{threshold:g} (flagged)"),
        QgsColorRampShader.ColorRampItem(top, QColor(r, g, b, 235), f"{top:g}"),
    ])
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(top)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


#: Trust classes (value -> RGBA, label): the colours of the class raster's embedded palette
#: (core/inference/trust_classes.py CLASS_COLOURS); supported is transparent over the SR output.
TRUST_CLASS_STYLE: Dict[int, Tuple[Tuple[int, int, int, int], str]] = {
    0: ((26, 150, 65, 0), "supported"),
    1: ((253, 174, 97, 150), "uncertain"),
    2: ((215, 25, 28, 220), "likely invented"),
}


def style_trust_classes(layer: QgsRasterLayer, show_supported: bool = False) -> None:
    """``<sr>_trust_class.tif``: orange uncertain, red likely invented; supported transparent (or faint green).

    Paletted on the class values (0/1/2; 255 is the file's nodata), so the
    legend names the classes and every trust map reads the same.
    """
    classes = []
    for value, ((r, g, b, a), label) in TRUST_CLASS_STYLE.items():
        alpha = 70 if value == 0 and show_supported else a
        classes.append(QgsPalettedRasterRenderer.Class(value, QColor(r, g, b, alpha), label))
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()
