"""What differs between the QGIS releases the plugin runs on (3.22 to 3.44), decided here and nowhere else.

Why a module of its own: QGIS deprecates a call when it adds its successor, so
the spelling that is silent on 3.44 does not exist on 3.22, and the one 3.22
knows warns on 3.44 ("QgsMapLayerComboBox.setFilters() is deprecated",
"QgsSingleBandGrayRenderer.grayBand() is deprecated"). Each difference is
asked of the running QGIS once (by feature, not by version number, so a
backport is used when present) and the rest of ``ui`` calls these names.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

from qgis.core import Qgis, QgsMapLayerProxyModel, QgsRasterMinMaxOrigin

__all__ = ["layer_filters", "renderer_band", "band_description", "CUMULATIVE_CUT_LIMIT"]

#: The flags ``QgsMapLayerComboBox.setFilters`` takes without a warning: ``Qgis.LayerFilters`` from QGIS 3.34,
#: ``QgsMapLayerProxyModel.Filters`` before. An int (what ``A | B`` gives on 3.44) reaches the deprecated overload.
_LAYER_FILTERS = getattr(Qgis, "LayerFilters", None) or QgsMapLayerProxyModel.Filters

#: The "cumulative count cut" min/max setting: ``Qgis.RasterRangeLimit`` from QGIS 3.42, before that an enum
#: of QgsRasterMinMaxOrigin.
CUMULATIVE_CUT_LIMIT = (getattr(Qgis, "RasterRangeLimit", None) or QgsRasterMinMaxOrigin.Limits).CumulativeCut


def layer_filters(*filters: Any) -> Any:
    """``QgsMapLayerProxyModel.Filter`` members combined into the flags type this QGIS's ``setFilters`` wants.

    ``combo.setFilters(layer_filters(Filter.RasterLayer, Filter.VectorLayer))``
    works on 3.22 and is silent on 3.44, where ``Filter.RasterLayer | Filter.VectorLayer``
    is a plain int and calls the deprecated overload.
    """
    if not filters:
        raise ValueError("layer_filters() needs at least one filter")
    return _LAYER_FILTERS(functools.reduce(operator.or_, filters))


def renderer_band(renderer: Any) -> int:
    """The band a one-band raster renderer (grey, pseudo-colour, paletted) draws; -1 when it has none.

    QGIS 3.38 added ``inputBand()`` to every renderer and deprecated
    ``grayBand()`` and ``band()``; 3.22 has only those.
    """
    for name in ("inputBand", "grayBand", "band"):
        getter = getattr(renderer, name, None)
        if getter is not None:
            return int(getter())
    return -1


def band_description(provider: Any, band: int) -> str:
    """The band's own description ("B02") when this QGIS's provider tells it apart from its display name, else ""."""
    describe = getattr(provider, "bandDescription", None)  # absent from older providers
    return str(describe(band) or "") if describe is not None else ""
