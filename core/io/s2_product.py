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
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import xml.etree.ElementTree as ET
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date as _date
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from ..jobs import CancelToken, InputError, OutputError, PathLike, Progress, check_cancel, progress_fn
from ..options import SCL_NODATA_DEFAULT
from .geo import apply as geo_apply
from .radiometry import Radiometry
from .rasters import Grid, gdal_env, utm_crs_for, window_from_extent
from .writer import GeoTiffSink, check_output_path, geotiff_profile

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

log = logging.getLogger(__name__)


#: The four 10 m bands the engine super-resolves.
BANDS_10M: Tuple[str, ...] = ("B02", "B03", "B04", "B08")
#: Scene classification (SCL) classes of Sen2Cor L2A products.
SCL_CLASSES: Dict[int, str] = {
    0: "no data", 1: "saturated or defective", 2: "dark area or topographic shadow", 3: "cloud shadow",
    4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud (medium probability)",
    9: "cloud (high probability)", 10: "thin cirrus", 11: "snow or ice",
}
#: The processing baseline that introduced the -1000 DN offset, and the day it went into production.
OFFSET_BASELINE = "04.00"
OFFSET_START_DATE = "2022-01-25"
#: ``band_id`` of the metadata's offset and spectral lists: the 13 bands in this order.
BAND_IDS: Dict[str, int] = {"B01": 0, "B02": 1, "B03": 2, "B04": 3, "B05": 4, "B06": 5, "B07": 6, "B08": 7,
                            "B8A": 8, "B09": 9, "B10": 10, "B11": 11, "B12": 12}
#: Nominal central wavelengths (nm) of the Sentinel-2 bands (GDAL's SENTINEL2 driver documentation).
NOMINAL_WAVELENGTH_NM: Dict[str, float] = {
    "B01": 443.0, "B02": 490.0, "B03": 560.0, "B04": 665.0, "B05": 705.0, "B06": 740.0, "B07": 783.0,
    "B08": 842.0, "B8A": 865.0, "B09": 945.0, "B10": 1375.0, "B11": 1610.0, "B12": 2190.0,
}
#: Central wavelengths (nm) of the 10 m bands as the products themselves list them
#: (``Spectral_Information_List`` of baseline 05.10 products); used when a product's XML lacks the list.
SPACECRAFT_WAVELENGTH_NM: Dict[str, Dict[str, float]] = {
    "Sentinel-2A": {"B02": 492.7, "B03": 559.8, "B04": 664.6, "B08": 832.8},
    "Sentinel-2B": {"B02": 492.3, "B03": 559.0, "B04": 665.0, "B08": 833.0},
}
BAND_NAMES: Dict[str, str] = {"B02": "blue", "B03": "green", "B04": "red", "B08": "near infrared",
                              "B8A": "narrow near infrared", "B05": "red edge", "B06": "red edge",
                              "B07": "red edge", "B11": "short-wave infrared", "B12": "short-wave infrared",
                              "B01": "coastal aerosol", "B09": "water vapour", "B10": "cirrus"}
#: Rows per strip when exporting: a multiple of the output's 512-px blocks, and of the 1024-px
#: tiles the JPEG 2000 bands of real products use, so each is decoded once. Memory: rows x width x bands x 2 B.
EXPORT_STRIP_ROWS = 1024

_MTD_RE = re.compile(r"(?:^|/)MTD_MSIL(1C|2A)\.xml$")
_PRODUCT_NAME_RE = re.compile(
    r"(S2[A-D])_MSI(L1C|L2A)_(\d{8})T(\d{6})_N(\d{2})(\d{2})_R(\d{3})_T(\w{5})_(\d{8}T\d{6})")
_GDAL_SUBDATASET_RE = re.compile(r"^SENTINEL2_L(?:1C|2A)(?:_\w+)?:(.+?\.(?:xml|zip|SAFE))(?::[^:]+){0,2}$", re.I)
_BAND_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])B(8A|08A|1[0-2]|0?[1-9])(?![0-9A-Za-z])", re.I)
_DATE_RE = re.compile(r"(?<!\d)(20\d{2}|19\d{2})-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")
_WORD_BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "near infrared": "B08",
               "near-infrared": "B08"}
#: Names of Sentinel Hub exports (EO Browser, Copernicus Browser): ``..._Sentinel-2_L2A_B08_(Raw).tiff``.
_SENTINEL_HUB_RE = re.compile(r"Sentinel-2_(L1C|L2A)_", re.I)


# --------------------------------------------------------------------------- names, dates, wavelengths


def band_key(name: Any) -> Optional[str]:
    """Canonical Sentinel-2 band name: ``B8``/``b08``/``B08`` -> ``B08``; ``B8A``/``B08A`` -> ``B8A``; else None."""
    if name is None:
        return None
    text = str(name).strip()
    m = re.fullmatch(r"[Bb]_?(8A|08A|1[0-2]|0?[1-9])", text, flags=re.I)
    if not m:
        return _WORD_BANDS.get(text.lower())
    token = m.group(1).upper()
    return "B8A" if token in ("8A", "08A") else f"B{int(token):02d}"


def _band_in_text(text: str) -> Optional[str]:
    """The one band name a text mentions (``..._B08_(Raw).tiff``), or None when none or several differ."""
    found = {band_key("B" + m.group(1)) for m in _BAND_TOKEN_RE.finditer(text or "")}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def date_in_text(text: str) -> Optional[str]:
    """The first valid date written in a text (``2023-05-12`` or ``20230512``), as ISO ``YYYY-MM-DD``."""
    for m in _DATE_RE.finditer(text or ""):
        try:
            return _date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            continue
    return None


def wavelength_of(band: Optional[str], spacecraft: str = "") -> Optional[float]:
    """Central wavelength (nm) of a band: the spacecraft's own when known, else the nominal one."""
    key = band_key(band)
    if key is None:
        return None
    return SPACECRAFT_WAVELENGTH_NM.get(spacecraft, {}).get(key, NOMINAL_WAVELENGTH_NM.get(key))


def band_of_wavelength(nm: Optional[float], tolerance: float = 25.0) -> Optional[str]:
    """The Sentinel-2 band whose nominal centre is nearest to ``nm`` (within ``tolerance``), else None."""
    if nm is None or not math.isfinite(nm):
        return None
    band, centre = min(NOMINAL_WAVELENGTH_NM.items(), key=lambda kv: abs(kv[1] - nm))
    return band if abs(centre - nm) <= tolerance else None


def _baseline_tuple(baseline: str) -> Optional[Tuple[int, int]]:
    m = re.fullmatch(r"\s*N?(\d{1,2})\.?(\d{2})\s*", baseline or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _has_offset_baseline(baseline: str) -> Optional[bool]:
    parsed = _baseline_tuple(baseline)
    return None if parsed is None else parsed >= (4, 0)


# --------------------------------------------------------------------------- the product


@dataclass(frozen=True)
class S2Product:
    """One Sentinel-2 L1C or L2A product, as far as the engine needs it.

    Paths are GDAL paths (``/vsizip/...`` inside a zip). ``offsets_dn`` holds the
    additive offset of each band in DN (0 for products before baseline 04.00).
    """

    source: str  # what the analyst gave: folder, zip or MTD file
    name: str  # PRODUCT_URI without .SAFE
    level: str  # "L1C" or "L2A"
    baseline: str  # "05.09"
    datetime: str  # ISO acquisition start, e.g. 2023-05-12T09:55:59.024Z
    date: str  # 2023-05-12
    tile: str  # T34UDA
    spacecraft: str  # Sentinel-2B
    quantification: float
    offsets_dn: Dict[str, float]
    band_paths: Dict[str, str]
    scl_path: Optional[str]
    wavelengths_nm: Dict[str, float]
    offset_rule: str  # one sentence for the log: which rule applied and why
    local_root: Optional[str] = None  # the .SAFE folder on disk (None inside a zip)
    notes: Tuple[str, ...] = field(default_factory=tuple)

    def radiometry(self, band: str) -> Radiometry:
        """``reflectance = DN * scale + offset`` for one band (GDAL scale/offset metadata form)."""
        key = band_key(band) or band
        q = float(self.quantification)
        off = float(self.offsets_dn.get(key, 0.0))
        rule = f"DN / {q:g}" if off == 0 else f"(DN {'-' if off < 0 else '+'} {abs(off):g}) / {q:g}"
        return Radiometry(1.0 / q, off / q, f"{self.level} baseline {self.baseline}: reflectance = {rule}")

    @property
    def label(self) -> str:
        return f"{self.name or Path(self.source).name} ({self.level}, {self.date})"


def is_product(path: PathLike) -> bool:
    """Whether ``path`` names a Sentinel-2 product (folder, zip, metadata XML or GDAL subdataset), not a raster."""
    text = str(path)
    if _GDAL_SUBDATASET_RE.match(text) or text.lower().startswith("/vsizip/"):
        return True
    p = Path(text)
    return p.is_dir() or p.suffix.lower() == ".zip" or bool(_MTD_RE.search(p.name))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _first_text(root: ET.Element, *names: str) -> Optional[str]:
    for name in names:
        for el in root.iter():
            if _local(el.tag) == name and el.text and el.text.strip():
                return el.text.strip()
    return None


def _strip_gdal_prefixes(text: str) -> str:
    """``SENTINEL2_L2A:/x/MTD_MSIL2A.xml:10m:EPSG_32634`` -> ``/x/MTD_MSIL2A.xml``; ``/vsizip/a.zip/...`` -> ``a.zip``."""
    m = _GDAL_SUBDATASET_RE.match(text)
    if m:
        text = m.group(1)
    if text.startswith("/vsizip/"):
        inner = re.match(r"/vsizip/(.+?\.zip)(?:/|$)", text, flags=re.I)
        if inner:
            text = inner.group(1)
    return text


def _locate(path: PathLike) -> Tuple[str, Optional[zipfile.ZipFile], str, List[str]]:
    """Where the product's metadata is: (kind, open zip or None, metadata member/path, all files relative to it).

    The file list is relative to the folder holding ``MTD_MSI*.xml`` (the .SAFE root).
    """
    text = _strip_gdal_prefixes(str(path))
    p = Path(text)
    if not p.exists():
        raise InputError(f"{p}: file or folder not found")
    if p.is_dir():
        mtds = sorted(p.glob("MTD_MSIL*.xml"))
        if not mtds:  # a folder holding one .SAFE (an unzipped download)
            inner = sorted(p.glob("*.SAFE/MTD_MSIL*.xml"))
            if len(inner) == 1:
                mtds = inner
        if not mtds:
            raise InputError(f"{p}: is not a Sentinel-2 product folder (no MTD_MSIL1C.xml or MTD_MSIL2A.xml inside)")
        mtd = mtds[0]
        root = mtd.parent
        files = [q.relative_to(root).as_posix() for q in root.rglob("*") if q.is_file()]
        return "dir", None, str(mtd), files
    if p.suffix.lower() == ".zip":
        try:
            zf = zipfile.ZipFile(p)
            names = zf.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputError(f"{p}: cannot be read as a zip file ({exc}); the download may be incomplete") from exc
        mtds = sorted((n for n in names if _MTD_RE.search(n)), key=lambda n: n.count("/"))
        if not mtds:
            zf.close()
            raise InputError(f"{p}: the zip holds no Sentinel-2 product (no MTD_MSIL1C.xml or MTD_MSIL2A.xml)")
        mtd = mtds[0]
        prefix = mtd.rsplit("/", 1)[0] + "/" if "/" in mtd else ""
        files = [n[len(prefix):] for n in names if n.startswith(prefix) and not n.endswith("/")]
        return "zip", zf, mtd, files
    if _MTD_RE.search(p.name):
        root = p.parent
        files = [q.relative_to(root).as_posix() for q in root.rglob("*") if q.is_file()]
        return "xml", None, str(p), files
    raise InputError(f"{p}: is not a Sentinel-2 product (expected a .SAFE folder, its .zip or its MTD_MSI*.xml)")


def _find_image(files: Sequence[str], listed: Sequence[str], level: str, band: str) -> Optional[str]:
    """Relative path of a band's JP2: the one the metadata lists when present, else by the naming rule."""
    suffix = {"L2A": {"SCL": "_SCL_20m"}, "L1C": {}}[level].get(band, f"_{band}_10m" if level == "L2A" else f"_{band}")
    present = set(files)
    for rel in listed:
        if rel.endswith(suffix) and f"{rel}.jp2" in present:
            return f"{rel}.jp2"
    folder = "IMG_DATA/R20m/" if band == "SCL" else ("IMG_DATA/R10m/" if level == "L2A" else "IMG_DATA/")
    found = sorted(f for f in files if f.startswith("GRANULE/") and f.endswith(f"{suffix}.jp2")
                   and f.rsplit("/", 1)[0].endswith(folder.rstrip("/")))
    if len(found) > 1:
        raise InputError(f"holds {len(found)} granules with band {band} (an old multi-tile product); "
                         "open one granule's tile or a single-tile product")
    return found[0] if found else None


def open_product(path: PathLike) -> S2Product:
    """Read a Sentinel-2 L1C/L2A product: a ``.SAFE`` folder, its ``.zip`` or its ``MTD_MSI*.xml``.

    Parses the metadata (level, baseline, dates, tile, quantification, per-band
    offsets, wavelengths) and finds the 10 m band files and, for L2A, the SCL.
    Raises :class:`InputError` with one sentence naming the file and the
    problem (not a product, unreadable zip, invalid XML, band files missing).
    """
    source = str(path)
    kind, zf, mtd, files = _locate(path)
    given = Path(_strip_gdal_prefixes(source))
    display = given.parent.name if _MTD_RE.search(given.name) else given.name
    try:
        raw = zf.read(mtd) if zf is not None else Path(mtd).read_bytes()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{display}: cannot read {Path(mtd).name} ({exc})") from exc
    finally:
        if zf is not None:
            zf.close()
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise InputError(f"{display}: {Path(mtd).name} is not valid XML ({exc})") from exc
    level = "L2A" if "2A" in Path(mtd).name.upper() else "L1C"
    if kind == "zip":
        zip_abs = given.resolve().as_posix()
        prefix = mtd.rsplit("/", 1)[0] + "/" if "/" in mtd else ""
        gdal_root = f"/vsizip/{zip_abs}/{prefix}".rstrip("/")
        local_root = None
    else:
        gdal_root = Path(mtd).parent.resolve().as_posix()
        local_root = gdal_root

    name = (_first_text(root, "PRODUCT_URI") or "").removesuffix(".SAFE")
    name_match = _PRODUCT_NAME_RE.search(name) or _PRODUCT_NAME_RE.search(display) or _PRODUCT_NAME_RE.search(gdal_root)
    baseline = _first_text(root, "PROCESSING_BASELINE") or (
        f"{name_match.group(5)}.{name_match.group(6)}" if name_match else "")
    start = _first_text(root, "PRODUCT_START_TIME", "DATATAKE_SENSING_START") or ""
    day = date_in_text(start) or (date_in_text(name_match.group(3)) if name_match else None)
    if day is None:
        raise InputError(f"{display}: {Path(mtd).name} gives no acquisition date (PRODUCT_START_TIME)")
    spacecraft = _first_text(root, "SPACECRAFT_NAME") or (
        {"S2A": "Sentinel-2A", "S2B": "Sentinel-2B", "S2C": "Sentinel-2C"}.get(name_match.group(1), "")
        if name_match else "")
    tile = f"T{name_match.group(8)}" if name_match else ""

    notes: List[str] = []
    q_text = _first_text(root, "BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE")
    try:
        quantification = float(q_text) if q_text else 10000.0
    except ValueError:
        raise InputError(f"{display}: quantification value {q_text!r} in {Path(mtd).name} is not a number") from None
    if not q_text:
        notes.append(f"{display}: no quantification value in the metadata; assumed 10000")
    if not quantification > 0:
        raise InputError(f"{display}: quantification value {quantification:g} in {Path(mtd).name} must be positive")

    id_to_band = {v: k for k, v in BAND_IDS.items()}
    wavelengths: Dict[str, float] = {}
    for el in root.iter():
        if _local(el.tag) == "Spectral_Information":
            key = band_key(el.get("physicalBand"))
            if key is None and el.get("bandId", "").isdigit():
                key = id_to_band.get(int(el.get("bandId")))
            if key is not None and el.get("bandId", "").isdigit():
                id_to_band[int(el.get("bandId"))] = key
            central = next((c.text for c in el.iter() if _local(c.tag) == "CENTRAL" and c.text), None)
            if key and central:
                try:
                    wavelengths[key] = float(central)
                except ValueError:
                    pass
    for b in BANDS_10M:
        wavelengths.setdefault(b, wavelength_of(b, spacecraft) or NOMINAL_WAVELENGTH_NM[b])

    offset_tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    offsets: Dict[str, float] = {}
    for el in root.iter():
        if _local(el.tag) == offset_tag and el.get("band_id", "").strip().isdigit() and el.text:
            key = id_to_band.get(int(el.get("band_id")))
            try:
                if key:
                    offsets[key] = float(el.text)
            except ValueError:
                raise InputError(f"{display}: {offset_tag} {el.text!r} is not a number") from None
    has_offset = _has_offset_baseline(baseline)
    mtd_name = Path(mtd).name
    if offsets:
        values = sorted({offsets.get(b, 0.0) for b in BANDS_10M})
        shown = ", ".join(f"{v:+g}" for v in values)
        rule = (f"{level} baseline {baseline or '?'}: {offset_tag} {shown} DN from {mtd_name}, so "
                f"reflectance = (DN + offset) / {quantification:g}")
    elif has_offset:
        offsets = {b: -1000.0 for b in BAND_IDS}
        rule = (f"{level} baseline {baseline}: {mtd_name} lists no {offset_tag}, but baselines from {OFFSET_BASELINE} "
                f"on carry -1000 DN; applied it, so reflectance = (DN - 1000) / {quantification:g}")
        notes.append(rule)
    else:
        offsets = {b: 0.0 for b in BAND_IDS}
        rule = (f"{level} baseline {baseline or 'unknown'} (before {OFFSET_BASELINE}): no offset, so "
                f"reflectance = DN / {quantification:g}")
    for b in BANDS_10M:
        offsets.setdefault(b, 0.0)

    listed = []
    for el in root.iter():
        if _local(el.tag) in ("IMAGE_FILE", "IMAGE_FILE_2A") and el.text:
            listed.append(el.text.strip())
    band_paths: Dict[str, str] = {}
    missing = []
    for b in BANDS_10M:
        try:
            rel = _find_image(files, listed, level, b)
        except InputError as exc:
            raise InputError(f"{display}: {exc}") from None
        if rel is None:
            missing.append(b)
        else:
            band_paths[b] = f"{gdal_root}/{rel}"
    if missing:
        where = "GRANULE/*/IMG_DATA/R10m/*_{band}_10m.jp2" if level == "L2A" else "GRANULE/*/IMG_DATA/*_{band}.jp2"
        raise InputError(f"{display}: band file(s) {', '.join(missing)} missing (expected "
                         f"{where.format(band=missing[0])}); the product is incomplete")
    scl_path = None
    if level == "L2A":
        rel = _find_image(files, listed, level, "SCL")
        if rel is None:
            notes.append(f"{display}: no scene classification (SCL) found; clouds cannot be masked")
        else:
            scl_path = f"{gdal_root}/{rel}"
    return S2Product(
        source=source, name=name or Path(gdal_root).name.removesuffix(".SAFE"), level=level, baseline=baseline,
        datetime=start or day, date=day, tile=tile, spacecraft=spacecraft, quantification=quantification,
        offsets_dn=offsets, band_paths=band_paths, scl_path=scl_path, wavelengths_nm=wavelengths,
        offset_rule=rule, local_root=local_root, notes=tuple(notes),
    )


def product_of_band_file(path: PathLike) -> Optional[S2Product]:
    """The product a band file (``.../GRANULE/*/IMG_DATA/[R10m/]*_B08_10m.jp2``) sits in, if it is still in its folder."""
    p = Path(path)
    for parent in list(p.parents)[:5]:
        if any(parent.glob("MTD_MSIL*.xml")):
            try:
                return open_product(parent)
            except InputError:
                return None
    return None


# --------------------------------------------------------------------------- plain rasters


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
        m = _PRODUCT_NAME_RE.search(name) or _PRODUCT_NAME_RE.search(tags.get("PRODUCT_URI", ""))
        if m:
            baseline, source = f"{m.group(5)}.{m.group(6)}", "the product name"
    has = _has_offset_baseline(baseline or "")
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

    band = band_key(desc) or _band_in_text(desc.split("_")[0] if _DATE_RE.search(desc) else desc)
    if band is None:
        band = band_key(btags.get("BANDNAME")) or band_key(btags.get("band_name"))
    if band is None and is_sr:
        band = band_key(tags.get("SR_BAND"))
    if band is None and ds.count == 1:
        band = _band_in_text(Path(name).stem)

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


# --------------------------------------------------------------------------- export


def harmonize_dn(values: np.ndarray, valid: np.ndarray, src: Radiometry, dst: Radiometry) -> np.ndarray:
    """Stored values under ``src`` -> uint16 DN under ``dst`` with the same reflectance; invalid pixels -> 0.

    Used when frames of different processing baselines (or float reflectance
    exports) go into one file that can carry only one scale/offset. Identical
    maps keep the values as they are; DN of an older baseline gain exactly +1000.
    Valid values that would fall to 0 or below become 1 (the darkest storable).
    """
    if src.scale == dst.scale and src.offset == dst.offset:
        if np.issubdtype(values.dtype, np.floating):  # resampled DN: round, never truncate
            values = np.rint(values)
        out = np.where(valid, np.clip(values, 1, 65535), 0)
        return out.astype(np.uint16)
    refl = values.astype(np.float64) * src.scale + src.offset
    dn = np.rint((refl - dst.offset) / dst.scale)
    dn = np.clip(dn, 1, 65535)
    return np.where(valid, dn, 0).astype(np.uint16)


def _open_gdal(path: str, what: str, display: str):
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"{display}: cannot read {what} ({exc})") from exc


def _scl_reader(scl_ds, grid: Grid) -> WarpedVRT:
    """The 20 m SCL seen on the 10 m grid with nearest neighbour (a class is never averaged)."""
    return WarpedVRT(scl_ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                     resampling=Resampling.nearest, nodata=0)


def _scl_text(classes: Sequence[int]) -> str:
    return ", ".join(f"{c} {SCL_CLASSES.get(c, '?')}" for c in sorted(set(classes))) or "none"


def export_product(
    product: Union[S2Product, PathLike],
    out_path: PathLike,
    bands: Sequence[str] = BANDS_10M,
    extent: Optional[Sequence[float]] = None,
    scl_nodata: Sequence[int] = SCL_NODATA_DEFAULT,
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
    messages: Optional[List[str]] = None,
) -> Path:
    """Write one multi-band GeoTIFF of a product's 10 m bands, clouds as nodata; returns its path.

    The DN are kept as they are (uint16, nodata 0); the product's radiometry
    goes into the GDAL band scale/offset metadata, so QGIS and the engine read
    reflectance; tags record the date, level, baseline, tile, offset rule, SCL
    classes masked and the bands' central wavelengths. ``extent`` (minx miny
    maxx maxy in the product's CRS) crops, snapped outward to whole pixels.
    Streams strips of :data:`EXPORT_STRIP_ROWS` rows; written atomically.
    """
    started = time.time()
    msgs: List[str] = messages if messages is not None else []
    report = progress_fn(progress)
    prod = product if isinstance(product, S2Product) else open_product(product)
    keys = []
    for b in bands:
        key = band_key(b)
        if key not in BANDS_10M:
            raise InputError(f"band {b!r} is not one of the 10 m bands {', '.join(BANDS_10M)}")
        if key in keys:
            raise InputError(f"band {key} is asked for twice")
        keys.append(key)
    if not keys:
        raise InputError("no band to export")
    scl_classes = sorted({int(c) for c in scl_nodata})
    for c in scl_classes:
        if c not in SCL_CLASSES:
            raise InputError(f"SCL class {c} does not exist (classes are 0-11)")
    inputs = [prod.source] + [p for p in prod.band_paths.values() if not p.startswith("/vsi")]
    out = check_output_path(out_path, inputs)
    if prod.local_root and Path(out).resolve().is_relative_to(Path(prod.local_root).resolve()):
        raise OutputError(f"{out}: is inside the product folder {prod.local_root}; write the export elsewhere")
    display = prod.name or Path(prod.source).name
    msgs.extend(prod.notes)

    with gdal_env(), ExitStack() as stack:
        datasets = [stack.enter_context(_open_gdal(prod.band_paths[k], f"band {k}", display)) for k in keys]
        first = datasets[0]
        grid0 = Grid(first.crs, first.transform, first.width, first.height)
        for k, ds in zip(keys, datasets):
            if not grid0.same_as(ds):
                raise InputError(f"{display}: band {k} is not on the same 10 m grid as band {keys[0]}")
        window = window_from_extent(grid0, extent)
        grid = Grid(grid0.crs, rasterio.windows.transform(window, grid0.transform), int(window.width),
                    int(window.height))
        scl = None
        if prod.level == "L2A" and prod.scl_path and scl_classes:
            scl = stack.enter_context(_scl_reader(stack.enter_context(_open_gdal(prod.scl_path, "the SCL", display)), grid))
        elif prod.level == "L1C" and scl_classes:
            msgs.append(f"{display}: L1C products have no scene classification; clouds are not masked")

        rads = [prod.radiometry(k) for k in keys]
        target = rads[0]
        if len({(r.scale, r.offset) for r in rads}) > 1:
            low = min(rads, key=lambda r: r.offset)
            target = Radiometry(low.scale, low.offset, low.source)
            msgs.append(f"{display}: the bands' offsets differ; DN shifted so all share reflectance = "
                        f"DN x {target.scale:g} {target.offset:+g}")
        wavelengths = {k: prod.wavelengths_nm.get(k) for k in keys}
        tags = {
            "S2_PRODUCT": prod.name, "S2_DATE": prod.date, "S2_DATETIME": prod.datetime, "S2_LEVEL": prod.level,
            "S2_BASELINE": prod.baseline, "S2_TILE": prod.tile, "S2_SPACECRAFT": prod.spacecraft,
            "S2_QUANTIFICATION": f"{prod.quantification:g}",
            "S2_OFFSET_DN": f"{target.offset / target.scale:g}",
            "S2_OFFSET_RULE": prod.offset_rule,
            "S2_SCL_MASKED": _scl_text(scl_classes) if scl is not None else "none (no SCL)",
            "S2_BANDS": ",".join(keys),
            "S2_WAVELENGTHS_NM": json.dumps(wavelengths),
            "ACQUISITION_DATE": prod.date,
        }
        sink = GeoTiffSink(out, geotiff_profile(grid, "uint16", len(keys), 0), tags, keys,
                           (target.scale, target.offset))
        clear = 0
        with sink:
            r0 = int(window.row_off)
            for row in range(0, grid.height, EXPORT_STRIP_ROWS):
                check_cancel(cancel)
                n = min(EXPORT_STRIP_ROWS, grid.height - row)
                src_win = Window(int(window.col_off), r0 + row, grid.width, n)
                block = np.empty((len(keys), n, grid.width), dtype=np.uint16)
                masked = np.zeros((n, grid.width), dtype=bool)
                if scl is not None:
                    classes = scl.read(1, window=Window(0, row, grid.width, n))
                    masked = np.isin(classes, scl_classes)
                for i, (ds, rad) in enumerate(zip(datasets, rads)):
                    try:
                        dn = ds.read(1, window=src_win)
                    except RasterioIOError as exc:
                        raise InputError(f"{display}: band {keys[i]} cannot be decoded ({exc})") from exc
                    valid = (dn != 0) & ~masked
                    block[i] = harmonize_dn(dn, valid, rad, target)
                clear += int(np.count_nonzero(block.min(axis=0)))
                sink.write_rows(row, block)
                report((row + n) / grid.height, f"{display}: rows {row + n}/{grid.height}")
            share = clear / max(1, grid.width * grid.height)
            sink.update_tags(S2_CLEAR=f"{share:.4f}")
            sink.commit()
    msgs.append(f"{display}: {prod.offset_rule}")
    if scl is not None:
        msgs.append(f"{display}: SCL classes masked as nodata: {_scl_text(scl_classes)}; {100 * share:.1f} % of the "
                    "area is clear")
    log.info("exported %s -> %s in %.1f s", display, out, time.time() - started)
    return Path(out)
