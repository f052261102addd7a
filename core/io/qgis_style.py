"""A QGIS default style beside a 4-band output, so the file opens in true colour even without the plugin.

Why: QGIS draws a raster with three or more bands as red = band 1, green =
band 2, blue = band 3. Our 4-band outputs hold B02 (blue), B03, B04 (red), B08
in that order, so an analyst who drags one into QGIS would see blue drawn as
red and a min-max stretch that hides everything. QGIS reads ``<name>.qml``
beside a raster (same folder, same name without the extension) as the layer's
default style when it opens the file; writing that file is the one way to
give a plain drag-and-drop the right look.

The style is a minimal QML: a ``multibandcolor`` renderer with R = B04,
G = B03, B = B02 (found by band *name*, never by position) and a 2-98 %
cumulative-cut stretch measured here on a decimated read, in the values QGIS
shows (the band scale and offset applied, as QGIS's GDAL provider does). It is
plain text: core never imports QGIS. The dock styles the layers it adds itself
(true and false colour as named styles); this file serves everyone else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from .sentinel2 import band_at_start

__all__ = [
    "TRUE_COLOUR",
    "FALSE_COLOUR",
    "CUMULATIVE_CUT",
    "MARKER",
    "composite_bands",
    "band_cut",
    "style_path_for",
    "multiband_qml",
    "write_composite_style",
]

PathLike = Union[str, "os.PathLike[str]"]
Stretch = Tuple[float, float]

#: Sentinel-2 band names drawn as red, green, blue.
TRUE_COLOUR: Tuple[str, str, str] = ("B04", "B03", "B02")
FALSE_COLOUR: Tuple[str, str, str] = ("B08", "B04", "B03")
#: QGIS's default cumulative cut (its "2 - 98 %" setting).
CUMULATIVE_CUT: Stretch = (0.02, 0.98)
#: Written into every style this module makes: a stale one is recognised (and only ours is removed).
MARKER = "written by s2_taskdriven_sr"
#: Longest side of the decimated read that measures the stretch (GDAL serves it from the overviews).
SAMPLE_SIDE = 1024

def composite_bands(descriptions: Sequence[Optional[str]],
                    combo: Sequence[str] = TRUE_COLOUR) -> Optional[Tuple[int, int, int]]:
    """1-based band numbers drawn as red, green, blue for ``combo``, or None when a band is missing.

    The first band of each name wins: in a revisit stack (``B02_<date>`` ...,
    clearest date first) that is the clearest date's composite.
    """
    names = [band_at_start(d) for d in descriptions]
    picked: List[int] = []
    for want in combo:
        if want not in names:
            return None
        picked.append(names.index(want) + 1)
    return picked[0], picked[1], picked[2]


def style_path_for(raster: PathLike) -> Path:
    """``out.tif`` -> ``out.qml``: where QGIS looks for a raster's default style."""
    return Path(raster).with_suffix(".qml")


def _number(v: float) -> str:
    return f"{float(v):.10g}"


def multiband_qml(bands: Tuple[int, int, int], stretches: Sequence[Stretch], title: str = "true colour",
                  cut: Stretch = CUMULATIVE_CUT) -> str:
    """QML text of a multiband colour renderer: ``bands`` as R, G, B, each stretched min-max over its range."""
    parts = []
    for colour, (lo, hi) in zip(("red", "green", "blue"), stretches):
        parts.append(f"""      <{colour}ContrastEnhancement>
        <minValue>{_number(lo)}</minValue>
        <maxValue>{_number(hi)}</maxValue>
        <algorithm>StretchToMinimumMaximum</algorithm>
      </{colour}ContrastEnhancement>""")
    enhancements = "\n".join(parts)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<!-- {MARKER}: {title}, {cut[0]:.0%} - {cut[1]:.0%} cumulative cut -->
<qgis version="3.22.0" styleCategories="AllStyleCategories" hasScaleBasedVisibilityFlag="0" minScale="1e+08" maxScale="0">
  <pipe>
    <rasterrenderer type="multibandcolor" redBand="{bands[0]}" greenBand="{bands[1]}" blueBand="{bands[2]}" alphaBand="-1" opacity="1" nodataColor="">
      <minMaxOrigin>
        <limits>CumulativeCut</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>{cut[0]:g}</cumulativeCutLower>
        <cumulativeCutUpper>{cut[1]:g}</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
{enhancements}
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" invertColors="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def _cut(ds, bidx: int, cut: Stretch) -> Optional[Stretch]:
    """The band's cumulative cut in displayed values (scale and offset applied), on a decimated read."""
    import numpy as np

    k = max(1, -(-max(ds.width, ds.height) // SAMPLE_SIDE))
    shape = (max(1, ds.height // k), max(1, ds.width // k))
    data = ds.read(bidx, out_shape=shape, masked=True)
    values = np.asarray(data.compressed(), dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    scale = ds.scales[bidx - 1] if ds.scales else 1.0
    offset = ds.offsets[bidx - 1] if ds.offsets else 0.0
    values = values * (scale if scale else 1.0) + (offset or 0.0)
    lo, hi = (float(v) for v in np.quantile(values, cut))
    return (lo, hi) if hi > lo else (lo, lo + max(abs(lo) * 1e-3, 1e-6))


def band_cut(raster: PathLike, band: int, cut: Stretch = CUMULATIVE_CUT) -> Optional[Stretch]:
    """The cumulative cut of ``band`` of ``raster`` in displayed values, measured on its pixels (decimated read).

    Why the plugin needs it besides QGIS's own: QGIS 3.44 with GDAL 3.13 gets
    no histogram for integer bands with a scale and offset ("dfMin and dfMax
    should be finite") and returns NaN for their cumulative cut. None when
    the band does not exist or holds no valid pixel.
    """
    import rasterio

    with rasterio.open(raster) as ds:
        if not 1 <= int(band) <= ds.count:
            return None
        return _cut(ds, int(band), cut)


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")[:400]
    except OSError:
        return False


def write_composite_style(raster: PathLike, combo: Sequence[str] = TRUE_COLOUR,
                          cut: Stretch = CUMULATIVE_CUT) -> Optional[Path]:
    """Write ``<raster>.qml`` drawing ``combo`` (by band name) with a cumulative-cut stretch; returns its path.

    Returns None (and writes nothing) when the raster does not name all three
    bands or has no valid pixel; a style this module wrote earlier for a raster
    of that name is then removed, since it would describe bands that no longer
    exist. A style the analyst made (no :data:`MARKER`) is never touched.
    Written atomically (hidden temporary file, then renamed).
    """
    import rasterio

    from .atomic import write_text_atomic

    raster = Path(raster)
    target = style_path_for(raster)
    with rasterio.open(raster) as ds:
        bands = composite_bands(ds.descriptions or (), combo)
        stretches = [_cut(ds, b, cut) for b in bands] if bands else []
    if bands is None or any(s is None for s in stretches):
        if target.is_file() and _ours(target):
            target.unlink()
        return None
    if target.is_file() and not _ours(target):
        return None  # the analyst's own default style wins
    title = "true colour" if tuple(combo) == TRUE_COLOUR else "/".join(combo)
    return write_text_atomic(target, multiband_qml(bands, stretches, f"{title} {'/'.join(combo)}", cut))
