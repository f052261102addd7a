"""Renderers for the plugin's layers: SR outputs stretched like their input, masks in fixed colours.

Why it matters: an SR output shown with QGIS's default per-layer stretch looks
brighter or darker than its input for reasons that have nothing to do with the
model, and a baseline and a task-driven output stretched independently cannot
be compared by eye. So every output takes *one* stretch: the input's (an SR
output keeps its input's units, see ``core.inference``). Buildings are always
red and roads always yellow, semi-transparent so the image shows through.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

from qgis.core import (
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsFillSymbol,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

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


def target_colour(target: str, alpha: int = 255) -> QColor:
    r, g, b = TARGET_COLOURS.get(str(target).lower(), _OTHER)
    return QColor(r, g, b, alpha)


def _enhancement_range(ce: Optional[QgsContrastEnhancement]) -> Optional[Stretch]:
    if ce is None:
        return None
    if ce.contrastEnhancementAlgorithm() == QgsContrastEnhancement.ContrastEnhancementAlgorithm.NoEnhancement:
        return None
    lo, hi = float(ce.minimumValue()), float(ce.maximumValue())
    return (lo, hi) if hi > lo else None


def layer_stretch(layer: QgsRasterLayer, band: int = 1) -> Optional[Stretch]:
    """The (min, max) the layer's renderer uses to draw ``band``, or the band's 2-98 % cut.

    Reads the renderer first so an analyst's own stretch is what the output
    gets; falls back to QGIS's default cumulative cut of that band when the
    renderer does not draw it (e.g. an RGB renderer on other bands).
    """
    renderer = layer.renderer()
    found: Optional[Stretch] = None
    if isinstance(renderer, QgsSingleBandGrayRenderer) and renderer.grayBand() == band:
        found = _enhancement_range(renderer.contrastEnhancement())
    elif isinstance(renderer, QgsMultiBandColorRenderer):
        for b, ce in ((renderer.redBand(), renderer.redContrastEnhancement()),
                      (renderer.greenBand(), renderer.greenContrastEnhancement()),
                      (renderer.blueBand(), renderer.blueContrastEnhancement())):
            if b == band:
                found = _enhancement_range(ce)
                break
    elif isinstance(renderer, QgsSingleBandPseudoColorRenderer) and renderer.band() == band:
        lo, hi = float(renderer.classificationMin()), float(renderer.classificationMax())
        found = (lo, hi) if hi > lo else None
    if found is not None:
        return found
    provider = layer.dataProvider()
    if provider is None or band < 1 or band > layer.bandCount():
        return None
    lo, hi = provider.cumulativeCut(band, 0.02, 0.98, layer.extent(), 250000)
    return (float(lo), float(hi)) if hi > lo else None


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


def style_vectors(layer: QgsVectorLayer, target: str) -> None:
    """Polygons filled with the target's colour (semi-transparent) and a solid outline."""
    fill = target_colour(target, VECTOR_FILL_ALPHA)
    line = target_colour(target, 255)
    symbol = QgsFillSymbol.createSimple({
        "color": f"{fill.red()},{fill.green()},{fill.blue()},{fill.alpha()}",
        "outline_color": f"{line.red()},{line.green()},{line.blue()},255",
        "outline_width": "0.3",
    })
    layer.renderer().setSymbol(symbol)
    layer.triggerRepaint()


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
