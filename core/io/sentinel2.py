"""Sentinel-2 MSI, described once: bands, resolutions, wavelengths, names, file patterns, processing levels.

Why one description: band names turn up everywhere (band descriptions of an
export, file names inside a SAFE product, QGIS layer names, model cards), and
every copy of a regex or a wavelength table drifts on its own. Every reader,
style and job asks this module, so a new product type is a description here
and one reader (torchgeo's ``datasets/sentinel.py`` keeps the same shape).

Facts: ESA's Sentinel-2 User Handbook and the L1C/L2A Product Specification
Document (bands and their native resolutions, MTF at Nyquist from ESA's
data-quality reports, ``band_id`` order of the
metadata lists, quantification and offsets); nominal centres as listed by
GDAL's SENTINEL2 driver documentation; spacecraft centres as baseline 05.10
products list them in their ``Spectral_Information_List``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

__all__ = [
    "Band",
    "Level",
    "SENTINEL2_BANDS",
    "BANDS_10M",
    "BAND_IDS",
    "NOMINAL_WAVELENGTH_NM",
    "SPACECRAFT_WAVELENGTH_NM",
    "BAND_NAMES",
    "MTF_NYQUIST",
    "LEVELS",
    "band_key",
    "band_in_text",
    "canonical_band",
    "band_at_start",
    "band_file_suffix",
    "wavelength_of",
    "band_of_wavelength",
]


@dataclass(frozen=True)
class Band:
    """One MSI band: its product name, native pixel size, nominal centre and common name."""

    name: str  # as the products write it: B01 ... B08, B8A, B09 ... B12
    resolution_m: int
    wavelength_nm: float
    common_name: str
    mtf_nyquist: Optional[float] = None  # system MTF at the band's Nyquist frequency (the simulator's PSF width)


@dataclass(frozen=True)
class Level:
    """One processing level: what its pixels mean and where its metadata keeps the radiometric scale."""

    name: str  # "L1C" or "L2A"
    quantity: str  # what a pixel is, for messages
    metadata_file: str
    quantification_tag: str
    offset_tag: str
    has_scl: bool  # Sen2Cor's scene classification (clouds, snow) comes with the product


#: The 13 bands in the metadata's ``band_id`` order.
SENTINEL2_BANDS: Tuple[Band, ...] = (
    Band("B01", 60, 443.0, "coastal aerosol"),
    Band("B02", 10, 490.0, "blue", mtf_nyquist=0.30),
    Band("B03", 10, 560.0, "green", mtf_nyquist=0.28),
    Band("B04", 10, 665.0, "red", mtf_nyquist=0.27),
    Band("B05", 20, 705.0, "red edge"),
    Band("B06", 20, 740.0, "red edge"),
    Band("B07", 20, 783.0, "red edge"),
    Band("B08", 10, 842.0, "near infrared", mtf_nyquist=0.26),
    Band("B8A", 20, 865.0, "narrow near infrared"),
    Band("B09", 60, 945.0, "water vapour"),
    Band("B10", 60, 1375.0, "cirrus"),
    Band("B11", 20, 1610.0, "short-wave infrared"),
    Band("B12", 20, 2190.0, "short-wave infrared"),
)
_BY_NAME: Dict[str, Band] = {b.name: b for b in SENTINEL2_BANDS}

#: The four 10 m bands the engine super-resolves, in the order every 4-band output holds them.
BANDS_10M: Tuple[str, ...] = tuple(b.name for b in SENTINEL2_BANDS if b.resolution_m == 10)
#: ``band_id`` of the metadata's offset and spectral lists.
BAND_IDS: Dict[str, int] = {b.name: i for i, b in enumerate(SENTINEL2_BANDS)}
NOMINAL_WAVELENGTH_NM: Dict[str, float] = {b.name: b.wavelength_nm for b in SENTINEL2_BANDS}
#: Central wavelengths (nm) of the 10 m bands as the products of each spacecraft list them; used when a
#: product's XML lacks its ``Spectral_Information_List``.
SPACECRAFT_WAVELENGTH_NM: Mapping[str, Mapping[str, float]] = {
    "Sentinel-2A": {"B02": 492.7, "B03": 559.8, "B04": 664.6, "B08": 832.8},
    "Sentinel-2B": {"B02": 492.3, "B03": 559.0, "B04": 665.0, "B08": 833.0},
}
BAND_NAMES: Dict[str, str] = {b.name: b.common_name for b in SENTINEL2_BANDS}
#: MTF at Nyquist of the bands it is known for (the 10 m bands; ESA's image-quality reports give 0.26-0.30).
MTF_NYQUIST: Dict[str, float] = {b.name: b.mtf_nyquist for b in SENTINEL2_BANDS if b.mtf_nyquist is not None}

LEVELS: Mapping[str, Level] = {
    "L1C": Level("L1C", "top-of-atmosphere reflectance", "MTD_MSIL1C.xml", "QUANTIFICATION_VALUE",
                 "RADIO_ADD_OFFSET", has_scl=False),
    "L2A": Level("L2A", "surface reflectance", "MTD_MSIL2A.xml", "BOA_QUANTIFICATION_VALUE",
                 "BOA_ADD_OFFSET", has_scl=True),
}

# A band token: "B8A"/"B08A" before the two-digit and one-digit forms (so B8A is never read as B08), an
# optional "_" after the B, and nothing alphanumeric on either side ("B08_2023-05-01", "T33UUU_..._B02_10m").
_TOKEN = r"B_?(8A|08A|1[0-2]|0?[1-9])(?![0-9A-Za-z])"
_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])" + _TOKEN, re.IGNORECASE)
# A band named at the start of a description, also after QGIS's "Band 3: " prefix.
_AT_START_RE = re.compile(r"^\s*(?:band\s+\d+\s*:\s*)?" + _TOKEN, re.IGNORECASE)
_FULL_RE = re.compile(r"\s*" + _TOKEN + r"\s*", re.IGNORECASE)
# Plain words analysts use for the 10 m bands.
_WORDS: Dict[str, str] = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "near infrared": "B08",
                          "near-infrared": "B08"}


def _canonical(token: str) -> str:
    token = token.upper()
    return "B8A" if token in ("8A", "08A") else f"B{int(token):02d}"


def band_key(name: object) -> Optional[str]:
    """The band a whole name is: ``B8``/``b08``/``B_08`` -> ``B08``; ``B8A``/``B08A`` -> ``B8A``; ``nir`` -> ``B08``."""
    if name is None:
        return None
    text = str(name).strip()
    m = _FULL_RE.fullmatch(text)
    if m:
        return _canonical(m.group(1))
    return _WORDS.get(text.lower())


def canonical_band(text: Optional[str]) -> Optional[str]:
    """The first band a text names (``SR x3 B08``, ``B08_2023-05-01``), or None."""
    m = _TOKEN_RE.search(text or "")
    return _canonical(m.group(1)) if m else None


def band_in_text(text: Optional[str]) -> Optional[str]:
    """The one band a text names (``..._B08_(Raw).tiff``); None when it names none, or several that differ."""
    found = {_canonical(m.group(1)) for m in _TOKEN_RE.finditer(text or "")}
    return found.pop() if len(found) == 1 else None


def band_at_start(description: Optional[str]) -> Optional[str]:
    """The band a description names at its start (``B08``, ``B08_2023-05-12``, ``Band 4: B08``), or None.

    A band merely mentioned later in a free text is not taken for the band itself.
    """
    m = _AT_START_RE.match(description or "")
    return _canonical(m.group(1)) if m else None


def band_file_suffix(band: str, level: str) -> str:
    """How a product names a band's image file, without ``.jp2``: L2A ``_B08_10m`` / ``_SCL_20m``, L1C ``_B08``."""
    if band == "SCL":
        return "_SCL_20m"
    if level == "L2A":
        return f"_{band}_{_BY_NAME[band].resolution_m}m"
    return f"_{band}"


def wavelength_of(band: Optional[str], spacecraft: str = "") -> Optional[float]:
    """Central wavelength (nm) of a band: the spacecraft's own when known, else the nominal one."""
    key = band_key(band)
    if key is None:
        return None
    return SPACECRAFT_WAVELENGTH_NM.get(spacecraft, {}).get(key, NOMINAL_WAVELENGTH_NM.get(key))


def band_of_wavelength(nm: Optional[float], tolerance: float = 25.0) -> Optional[str]:
    """The band whose nominal centre is nearest to ``nm`` (within ``tolerance``), else None."""
    if nm is None or not math.isfinite(nm):
        return None
    band, centre = min(NOMINAL_WAVELENGTH_NM.items(), key=lambda kv: abs(kv[1] - nm))
    return band if abs(centre - nm) <= tolerance else None
