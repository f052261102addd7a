"""One spelling for 3.22 to 3.44: layer filters and renderer bands without QGIS's deprecation warnings (issue 24, 7).

On QGIS 3.44, ``QgsMapLayerComboBox.setFilters(A | B)`` (an int there) and
``QgsSingleBandGrayRenderer.grayBand()`` warn; on 3.22 their successors do not
exist. ``ui/compat.py`` decides once; these tests call it on real widgets and
renderers with deprecation warnings turned into errors, and make sure the
plugin's code calls the old spellings nowhere else.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_deprecations():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", PendingDeprecationWarning)
        yield


def test_combined_layer_filters_are_set_without_a_warning(qh, qgis_iface, no_deprecations):
    from qgis.core import QgsMapLayerProxyModel
    from qgis.gui import QgsMapLayerComboBox

    compat = qh.ui("compat")
    f = QgsMapLayerProxyModel.Filter
    combo = QgsMapLayerComboBox()
    combo.setFilters(compat.layer_filters(f.RasterLayer, f.VectorLayer))
    assert int(combo.filters()) == int(f.RasterLayer) | int(f.VectorLayer)
    combo.setFilters(compat.layer_filters(f.HasGeometry, f.RasterLayer))
    assert int(combo.filters()) == int(f.HasGeometry) | int(f.RasterLayer)
    combo.setFilters(compat.layer_filters(f.RasterLayer))
    assert int(combo.filters()) == int(f.RasterLayer)
    with pytest.raises(ValueError):
        compat.layer_filters()


def test_the_band_of_each_one_band_renderer_is_read_without_a_warning(qh, clean_qgis, tmp_path, no_deprecations):
    from qgis.core import (
        QgsMultiBandColorRenderer,
        QgsPalettedRasterRenderer,
        QgsRasterLayer,
        QgsRasterShader,
        QgsSingleBandGrayRenderer,
        QgsSingleBandPseudoColorRenderer,
    )

    compat = qh.ui("compat")
    path = qh.write_tif(tmp_path / "three.tif", (np.arange(3 * 20 * 20).reshape(3, 20, 20) % 500).astype("uint16"))
    layer = QgsRasterLayer(str(path), "three")
    provider = layer.dataProvider()
    assert compat.renderer_band(QgsSingleBandGrayRenderer(provider, 2)) == 2
    assert compat.renderer_band(QgsSingleBandPseudoColorRenderer(provider, 3, QgsRasterShader())) == 3
    assert compat.renderer_band(QgsPalettedRasterRenderer(provider, 1, [])) == 1
    assert compat.renderer_band(QgsMultiBandColorRenderer(provider, 1, 2, 3)) in (-1, 1)  # no single band

    styles = qh.ui("styles")  # layer_stretch reads a grey renderer's band through compat
    styles.apply_gray_stretch(layer, (10.0, 400.0), 2)
    assert styles.layer_stretch(layer, 2) == pytest.approx((10.0, 400.0))


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node


def test_the_plugin_calls_the_deprecated_spellings_nowhere() -> None:
    """``setFilters(A | B)`` and ``grayBand()`` only through ``ui/compat.py``, whose spelling works on both."""
    sources = [ROOT / "plugin.py", *sorted((ROOT / "ui").rglob("*.py")), *sorted((ROOT / "scripts").glob("*.py"))]
    found = []
    for path in sources:
        if path.name == "compat.py":
            continue
        for call in _calls(path):
            name = call.func.attr
            combined = any(isinstance(a, ast.BinOp) and isinstance(a.op, ast.BitOr) for a in call.args)
            if (name == "setFilters" and combined) or name == "grayBand":
                found.append(f"{path.relative_to(ROOT)}:{call.lineno}: {ast.unparse(call)[:80]}")
    assert found == []
