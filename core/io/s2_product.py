"""Sentinel-2 products in: ``.SAFE`` folders, their zips, exports; what a raster band is and how to read it.

Why a module of its own: analysts bring Sentinel-2 as the Copernicus Data
Space delivers it (an L2A or L1C ``.SAFE`` folder or its ``.zip``, JPEG 2000
bands, a scene classification at 20 m) or as GeoTIFF exports from browsers.
Turning those into the clean 10 m rasters the engine reads needs three facts
from the product that a plain raster does not carry:

* **radiometry** -- ``reflectance = (DN + offset) / QUANTIFICATION_VALUE``, with
  the per-band offset listed in the metadata (``BOA_ADD_OFFSET`` for L2A,
  ``RADIO_ADD_OFFSET`` for L1C). Products of processing baseline 04.00 and
  later (acquired or reprocessed since 2022-01-25) carry -1000; older ones have
  none. DN 0 is nodata. Getting this wrong shifts every reflectance by 0.1.
* **clouds** -- the L2A scene classification (SCL) says which pixels are cloud,
  shadow, cirrus or snow; those become nodata (classes chosen by the user).
* **identity** -- band name, date, wavelength, pixel size: what the input checks
  (``core.io.checks``) compare with the model card.

The metadata XML is read with the standard library (namespaces ignored, as
they change between format versions); imagery is read through GDAL, from a zip
through ``/vsizip/`` (never unpacked to disk).

This module is the public face; the work is done in three modules, one job each:
:mod:`.s2_metadata` (finding a product and reading its metadata; band, date and
wavelength names), :mod:`.s2_frames` (what a plain raster band is, and the
offset rule for rasters without metadata) and :mod:`.s2_export` (reading a
product's 10 m bands and SCL, and writing them as one GeoTIFF).
"""

from __future__ import annotations

from .s2_export import export_product, harmonize_dn
from .s2_frames import FrameInfo, baseline_rule, frame_info, ground_pixel_size
from .s2_metadata import (
    BAND_NAMES,
    BANDS_10M,
    OFFSET_BASELINE,
    OFFSET_START_DATE,
    SCL_CLASSES,
    S2Product,
    band_key,
    band_of_wavelength,
    date_in_text,
    is_product,
    open_product,
    product_of_band_file,
    wavelength_of,
)

__all__ = [
    "BANDS_10M",
    "BAND_NAMES",
    "SCL_CLASSES",
    "OFFSET_BASELINE",
    "OFFSET_START_DATE",
    "S2Product",
    "FrameInfo",
    "band_key",
    "is_product",
    "open_product",
    "product_of_band_file",
    "export_product",
    "harmonize_dn",
    "baseline_rule",
    "frame_info",
    "ground_pixel_size",
    "wavelength_of",
    "band_of_wavelength",
    "date_in_text",
]

