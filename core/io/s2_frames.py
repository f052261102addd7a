"""Plain rasters of Sentinel-2 bands (GeoTIFF exports, loose JP2): what a band is and which offset its DN carry.

Why a module of its own: a raster outside its product has no metadata XML, so
its identity (band, date, wavelength, ground pixel size: what the input checks
in ``core.io.checks`` compare with the model card) and its radiometric offset
(the processing baseline rule) are inferred from tags, band descriptions and
the file name.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

from rasterio.warp import transform as warp_transform

from ..jobs import InputError, PathLike
from .geo import apply as geo_apply
from .rasters import utm_crs_for
from .s2_metadata import (
    DATE_RE,
    OFFSET_BASELINE,
    OFFSET_START_DATE,
    PRODUCT_NAME_RE,
    band_in_text,
    band_key,
    band_of_wavelength,
    date_in_text,
    has_offset_baseline,
    wavelength_of,
)

__all__ = ["FrameInfo", "baseline_rule", "frame_info", "ground_pixel_size"]

#: Names of Sentinel Hub exports (EO Browser, Copernicus Browser): ``..._Sentinel-2_L2A_B08_(Raw).tiff``.
_SENTINEL_HUB_RE = re.compile(r"Sentinel-2_(L1C|L2A)_", re.I)


def baseline_rule(path: PathLike, ds_tags: Optional[Mapping[str, str]] = None, date: Optional[str] = None,
                  choice: str = "auto") -> Tuple[float, str]:
    """The reflectance offset of a plain raster of Sentinel-2 DN that carries no offset metadata.

    Returns ``(offset in reflectance, sentence for the log)``; reflectance is
    ``DN / 10000 + offset``. In order: the analyst's ``choice`` (``"pre-04.00"``:
    0, ``"04.00+"``: -0.1); a processing baseline in the tags (ours, or GDAL's
    SENTINEL2 metadata) or in a product-like name (``..._N0509_...``); a Sentinel
    Hub export name (EO Browser, Copernicus Browser: their processing API
    harmonizes values to the old convention by default, ``harmonizeValues``);
    the acquisition date (on or after 2022-01-25: -0.1); else no offset.
    """
    name = Path(str(path)).name
    tags = dict(ds_tags or {})
    if choice == "pre-04.00":
        return 0.0, f"{name}: processing baseline before 04.00 as chosen: no offset, reflectance = DN / 10000"
    if choice == "04.00+":
        return -0.1, f"{name}: processing baseline 04.00 or later as chosen: reflectance = (DN - 1000) / 10000"
    if choice not in ("auto", "", None):
        raise InputError(f"processing baseline choice must be auto, pre-04.00 or 04.00+, got {choice!r}")
    for key in ("S2_OFFSET_DN",):
        if key in tags:
            try:
                off = float(tags[key])
            except ValueError:
                break
            return off / 10000.0, f"{name}: offset {off:+g} DN recorded in the file's metadata"
    baseline = tags.get("S2_BASELINE") or tags.get("PROCESSING_BASELINE")
    source = "the file's metadata"
    if not baseline:
        m = PRODUCT_NAME_RE.search(name) or PRODUCT_NAME_RE.search(tags.get("PRODUCT_URI", ""))
        if m:
            baseline, source = f"{m.group(5)}.{m.group(6)}", "the product name"
    has = has_offset_baseline(baseline or "")
    if has is not None:
        if has:
            return -0.1, (f"{name}: processing baseline {baseline} (from {source}) is {OFFSET_BASELINE} or later: "
                          "reflectance = (DN - 1000) / 10000")
        return 0.0, (f"{name}: processing baseline {baseline} (from {source}) is before {OFFSET_BASELINE}: "
                     "no offset, reflectance = DN / 10000")
    if _SENTINEL_HUB_RE.search(name):
        return 0.0, (f"{name}: a Sentinel Hub export (EO Browser / Copernicus Browser), whose values are harmonized "
                     "to the pre-04.00 convention by default: no offset, reflectance = DN / 10000 (choose "
                     "'04.00+' if it was exported without harmonization)")
    day = date or tags.get("S2_DATE") or date_in_text(tags.get("PRODUCT_START_TIME", "")) or date_in_text(name)
    if day:
        if day >= OFFSET_START_DATE:
            return -0.1, (f"{name}: acquired {day}, on or after {OFFSET_START_DATE} when baseline {OFFSET_BASELINE} "
                          "added a -1000 DN offset: reflectance = (DN - 1000) / 10000 (choose 'pre-04.00' if the "
                          "values were harmonized when exported)")
        return 0.0, (f"{name}: acquired {day}, before {OFFSET_START_DATE}: no offset, reflectance = DN / 10000 "
                     "(choose '04.00+' if it comes from a reprocessed product of baseline 05.00 or later)")
    return 0.0, (f"{name}: no processing baseline, product name or date to go by: assumed no offset, reflectance = "
                 "DN / 10000 (set the processing baseline if the file holds DN of baseline 04.00 or later)")


@dataclass(frozen=True)
class FrameInfo:
    """What one raster band is, as far as the file tells: the input checks compare it with the model card."""

    band: Optional[str]  # canonical S-2 band name (B08) or None when unknown
    date: Optional[str]  # ISO date or None
    wavelength_nm: Optional[float]
    is_sr_output: bool
    pixel_size_m: Optional[float]  # measured on the ground at the raster's centre


def ground_pixel_size(ds) -> Optional[float]:
    """Pixel size in metres on the ground at the raster's centre (geometric mean of its two sides).

    A projected CRS's units are not always ground metres (Web Mercator
    stretches them by 1/cos(latitude); degrees are not metres at all), so the
    pixel is measured in the local UTM zone, where the scale error stays below
    0.1 %. Returns None without a CRS or georeferencing.
    """
    crs, t = ds.crs, ds.transform
    if crs is None or t.is_identity:
        return None
    epsg = crs.to_epsg() if crs.is_epsg_code else None
    if epsg and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760) and t.b == 0 and t.d == 0:
        return math.sqrt(abs(t.a) * abs(t.e))
    c, r = ds.width / 2.0, ds.height / 2.0
    pts = [geo_apply(t, c, r), geo_apply(t, c + 1, r), geo_apply(t, c, r + 1)]
    try:
        utm = utm_crs_for(ds)
        xs, ys = warp_transform(crs, utm, [p[0] for p in pts], [p[1] for p in pts])
    except Exception:  # an exotic CRS PROJ cannot transform: its own units are the best guess
        return math.sqrt(abs(t.a * t.e - t.b * t.d))
    dx = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    dy = math.hypot(xs[2] - xs[0], ys[2] - ys[0])
    return math.sqrt(dx * dy)


def _json_tag(tags: Mapping[str, str], key: str) -> Any:
    try:
        return json.loads(tags[key])
    except (KeyError, ValueError, TypeError):
        return None


def _wavelength_from_tags(tags: Mapping[str, str]) -> Optional[float]:
    for key in ("WAVELENGTH", "CENTRAL_WAVELENGTH", "CENTRAL_WAVELENGTH_NM", "wavelength"):
        if key in tags:
            try:
                value = float(str(tags[key]).split()[0])
            except (ValueError, IndexError):
                continue
            unit = str(tags.get("WAVELENGTH_UNIT", tags.get("wavelength_units", ""))).lower()
            if unit in ("um", "µm", "micrometers", "micrometer", "micron", "microns") or value < 5.0:
                value *= 1000.0
            return value
    return None


def frame_info(path: PathLike, bidx: int, ds) -> FrameInfo:
    """What band ``bidx`` of the open raster ``ds`` (read from ``path``) is: band, date, wavelength, SR output, pixel.

    Sources, most specific first: the band description (``B08``,
    ``B08_2023-05-12``); band tags (``BANDNAME``, ``WAVELENGTH`` as GDAL's
    SENTINEL2 driver writes them; ``CENTRAL_WAVELENGTH_UM`` of GDAL's IMAGERY
    domain); our own dataset tags (``S2_DATE``, ``S2_WAVELENGTHS_NM``,
    ``SR_BAND``, ``SR_SCALE``); the file name when the raster has one band
    (``T34UDA_20230512T095559_B08_10m.jp2``,
    ``2023-05-12-00_00_..._Sentinel-2_L2A_B08_(Raw).tiff``).
    """
    name = Path(str(path)).name
    desc = (ds.descriptions[bidx - 1] or "") if ds.descriptions else ""
    tags = ds.tags()
    btags = ds.tags(bidx)
    try:
        imagery = ds.tags(bidx, ns="IMAGERY")
    except Exception:
        imagery = {}
    is_sr = "SR_SCALE" in tags or "SR_MODEL" in tags

    band = band_key(desc) or band_in_text(desc.split("_")[0] if DATE_RE.search(desc) else desc)
    if band is None:
        band = band_key(btags.get("BANDNAME")) or band_key(btags.get("band_name"))
    if band is None and is_sr:
        band = band_key(tags.get("SR_BAND"))
    if band is None and ds.count == 1:
        band = band_in_text(Path(name).stem)

    wavelength = _wavelength_from_tags(btags)
    if wavelength is None and "CENTRAL_WAVELENGTH_UM" in imagery:
        try:
            wavelength = float(imagery["CENTRAL_WAVELENGTH_UM"]) * 1000.0
        except ValueError:
            pass
    if wavelength is None and band is not None:
        listed = _json_tag(tags, "S2_WAVELENGTHS_NM")
        if isinstance(listed, dict) and band in listed:
            wavelength = float(listed[band])
        else:
            wavelength = wavelength_of(band, tags.get("S2_SPACECRAFT", ""))
    if band is None and wavelength is not None:
        band = band_of_wavelength(wavelength)

    day = date_in_text(desc) or date_in_text(btags.get("S2_DATE", "")) or date_in_text(tags.get("S2_DATE", ""))
    if day is None:
        for key in ("ACQUISITION_DATE", "PRODUCT_START_TIME", "DATATAKE_1_DATATAKE_SENSING_START", "SENSING_TIME"):
            day = date_in_text(tags.get(key, ""))
            if day:
                break
    if day is None:
        day = date_in_text(name)
    return FrameInfo(band=band, date=day, wavelength_nm=wavelength, is_sr_output=is_sr,
                     pixel_size_m=ground_pixel_size(ds))
