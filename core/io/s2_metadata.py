"""Sentinel-2 products: finding one (``.SAFE`` folder, its ``.zip``, ``MTD_MSI*.xml``) and reading its metadata.

Why a module of its own: the facts a plain raster does not carry -- the
quantification value, the per-band ``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET``, the
processing baseline, the date, where the 10 m bands and the SCL sit -- come
from the product's metadata XML. It is read with the standard library
(namespaces ignored, as they change between format versions); inside a zip the
files are addressed through GDAL's ``/vsizip/`` (never unpacked to disk). The
bands, their wavelengths and file names come from the one sensor description,
:mod:`.sentinel2`; dates in names are read here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import date as _date
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..jobs import InputError, PathLike
from .radiometry import Radiometry
from .s2_untrusted import (
    ImplausibleRadiometry,
    check_product_radiometry,
    parse_metadata,
    read_metadata_file,
    read_metadata_member,
)
from .sentinel2 import (  # the sensor's vocabulary, re-exported for the product's readers
    BAND_IDS,
    BAND_NAMES,
    BANDS_10M,
    NOMINAL_WAVELENGTH_NM,
    SPACECRAFT_WAVELENGTH_NM,
    band_file_suffix,
    band_in_text,
    band_key,
    band_of_wavelength,
    wavelength_of,
)

__all__ = [
    "BANDS_10M",
    "BAND_NAMES",
    "BAND_IDS",
    "SCL_CLASSES",
    "OFFSET_BASELINE",
    "OFFSET_START_DATE",
    "NOMINAL_WAVELENGTH_NM",
    "SPACECRAFT_WAVELENGTH_NM",
    "PRODUCT_NAME_RE",
    "DATE_RE",
    "S2Product",
    "band_key",
    "band_in_text",
    "date_in_text",
    "wavelength_of",
    "band_of_wavelength",
    "has_offset_baseline",
    "is_product",
    "open_product",
    "product_of_band_file",
]


#: Scene classification (SCL) classes of Sen2Cor L2A products.
SCL_CLASSES: Dict[int, str] = {
    0: "no data", 1: "saturated or defective", 2: "dark area or topographic shadow", 3: "cloud shadow",
    4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud (medium probability)",
    9: "cloud (high probability)", 10: "thin cirrus", 11: "snow or ice",
}
#: The processing baseline that introduced the -1000 DN offset, and the day it went into production.
OFFSET_BASELINE = "04.00"
OFFSET_START_DATE = "2022-01-25"

_MTD_RE = re.compile(r"(?:^|/)MTD_MSIL(1C|2A)\.xml$", re.I)
#: The metadata of old multi-tile products (format before December 2016), e.g. ``S2A_OPER_MTD_SAFL1C_PDMC_...xml``.
_OLD_MTD_RE = re.compile(r"(?:^|/)S2[A-D]_OPER_MTD_SAFL(1C|2A)_[^/]*\.xml$", re.I)
PRODUCT_NAME_RE = re.compile(
    r"(S2[A-D])_MSI(L1C|L2A)_(\d{8})T(\d{6})_N(\d{2})(\d{2})_R(\d{3})_T(\w{5})_(\d{8}T\d{6})")
_GDAL_SUBDATASET_RE = re.compile(r"^SENTINEL2_L(?:1C|2A)(?:_\w+)?:(.+?\.(?:xml|zip|SAFE))(?::[^:]+){0,2}$", re.I)
DATE_RE = re.compile(r"(?<!\d)(20\d{2}|19\d{2})-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")

# --------------------------------------------------------------------------- dates and baselines


def date_in_text(text: str) -> Optional[str]:
    """The first valid date written in a text (``2023-05-12`` or ``20230512``), as ISO ``YYYY-MM-DD``."""
    for m in DATE_RE.finditer(text or ""):
        try:
            return _date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            continue
    return None


def _baseline_tuple(baseline: str) -> Optional[Tuple[int, int]]:
    """``"05.09"``/``"N0509"`` -> ``(5, 9)``, so baselines compare as numbers; None when unreadable."""
    m = re.fullmatch(r"\s*N?(\d{1,2})\.?(\d{2})\s*", baseline or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def has_offset_baseline(baseline: str) -> Optional[bool]:
    """Whether a baseline (``05.09``, ``N0509``) carries the -1000 DN offset (04.00 on); None when unreadable."""
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
    return p.is_dir() or p.suffix.lower() == ".zip" or bool(_MTD_RE.search(p.name) or _OLD_MTD_RE.search(p.name))


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


def _metadata_in(folder: Path) -> List[Path]:
    """The ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml`` directly in a folder, their names matched case-insensitively.

    A product written on a case-insensitive file system may say ``MTD_MSIL2a.xml``;
    the zip reader matches names the same way, so a product reads alike unzipped and zipped.
    """
    try:
        return sorted(q for q in folder.iterdir() if q.is_file() and _MTD_RE.search(q.name))
    except OSError:
        return []


def _refuse_old_format(display: str, names: Sequence[str]) -> None:
    """The message the documentation promises for old multi-tile products, instead of "no MTD_MSIL1C.xml"."""
    old = sorted((n for n in names if _OLD_MTD_RE.search(n)), key=lambda n: n.count("/"))
    if old:
        raise InputError(f"{display}: is an old multi-tile product (several granules in one .SAFE, before 2016; its "
                         f"metadata is {old[0].rsplit('/', 1)[-1]}), which is not supported; open one granule or a "
                         "single-tile product")


def _refuse_several(display: str, product_folders: Sequence[str], container: str) -> None:
    """Two products in one container: which one the analyst meant cannot be guessed, so both are named."""
    if len(product_folders) > 1:
        shown = " and ".join(product_folders[:2]) + (f" (and {len(product_folders) - 2} more)"
                                                     if len(product_folders) > 2 else "")
        raise InputError(f"{display}: the {container} holds {len(product_folders)} Sentinel-2 products ({shown}); "
                         "give one product at a time")


def _locate(path: PathLike) -> Tuple[str, Optional[zipfile.ZipFile], str, List[str]]:
    """Where the product's metadata is: (kind, open zip or None, metadata member/path, all files relative to it).

    The file list is relative to the folder holding ``MTD_MSI*.xml`` (the .SAFE root).
    """
    text = _strip_gdal_prefixes(str(path))
    p = Path(text)
    if not p.exists():
        raise InputError(f"{p}: file or folder not found")
    if p.is_dir():
        mtds = _metadata_in(p)
        if not mtds:  # a folder holding one .SAFE (an unzipped download)
            inner = [m for sub in sorted(p.glob("*.SAFE")) if sub.is_dir() for m in _metadata_in(sub)]
            _refuse_several(p.name, sorted({m.parent.name for m in inner}), "folder")
            mtds = inner
        if not mtds:
            _refuse_old_format(p.name, [q.name for q in p.iterdir()]
                               + [f"{q.parent.name}/{q.name}" for q in p.glob("*.SAFE/*")])
            raise InputError(f"{p}: is not a Sentinel-2 product folder (no MTD_MSIL1C.xml or MTD_MSIL2A.xml inside)")
        if len(mtds) > 1:
            raise InputError(f"{p.name}: holds both {mtds[0].name} and {mtds[1].name}; a product has one; "
                             "give one product at a time")
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
        mtds = sorted((n for n in names if _MTD_RE.search(n)), key=lambda n: (n.count("/"), n))
        try:
            if not mtds:
                _refuse_old_format(p.name, names)
                raise InputError(f"{p}: the zip holds no Sentinel-2 product (no MTD_MSIL1C.xml or MTD_MSIL2A.xml)")
            _refuse_several(p.name, sorted({(n.rsplit("/", 1)[0] if "/" in n else "(the zip's root)")
                                            for n in mtds}), "zip")
            if len(mtds) > 1:
                raise InputError(f"{p.name}: holds both {mtds[0]} and {mtds[1]}; a product has one; "
                                 "give one product at a time")
        except InputError:
            zf.close()
            raise
        mtd = mtds[0]
        prefix = mtd.rsplit("/", 1)[0] + "/" if "/" in mtd else ""
        files = [n[len(prefix):] for n in names if n.startswith(prefix) and not n.endswith("/")]
        return "zip", zf, mtd, files
    if _MTD_RE.search(p.name):
        root = p.parent
        files = [q.relative_to(root).as_posix() for q in root.rglob("*") if q.is_file()]
        return "xml", None, str(p), files
    if _OLD_MTD_RE.search(p.name):
        _refuse_old_format(p.parent.name, [p.name])
    raise InputError(f"{p}: is not a Sentinel-2 product (expected a .SAFE folder, its .zip or its MTD_MSI*.xml)")


def _find_image(files: Sequence[str], listed: Sequence[str], level: str, band: str) -> Optional[str]:
    """Relative path of a band's JP2: the one the metadata lists when present, else by the naming rule."""
    suffix = band_file_suffix(band, level)
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
        raw = read_metadata_member(zf, mtd, display) if zf is not None else read_metadata_file(Path(mtd), display)
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{display}: cannot read {Path(mtd).name} ({exc})") from exc
    finally:
        if zf is not None:
            zf.close()
    root = parse_metadata(raw, display, Path(mtd).name)
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
    name_match = PRODUCT_NAME_RE.search(name) or PRODUCT_NAME_RE.search(display) or PRODUCT_NAME_RE.search(gdal_root)
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
    check_product_radiometry(display, Path(mtd).name, quantification, offset_tag, offsets)
    has_offset = has_offset_baseline(baseline)
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
        if _metadata_in(parent):
            try:
                return open_product(parent)
            except ImplausibleRadiometry:
                raise  # its units cannot be trusted: never fall back to a guess
            except InputError:
                return None
    return None

