"""Reading a downloaded Sentinel-2 product as untrusted input: member formats, metadata size, XML, radiometry.

Why a module of its own: an analyst opens ``.zip`` files fetched from anywhere,
so everything inside a product is written by a stranger. GDAL obeys what a
file says it is, not what its name says: a ``B02_10m.jp2`` that is really a
VRT makes GDAL read a file elsewhere on disk or fetch a URL, and its pixels end
up in the export. A small zip can inflate to gigabytes of metadata, and XML
entities can make a few kilobytes expand without bound. The rules, in one
place so every reader of products applies them alike:

* **members open only as their format** -- ``.jp2`` with JP2OpenJPEG, ``.tif``
  with GTiff, anything else refused, naming the member; never a network path,
  never a file that leaves the product folder (links resolved first);
* **metadata is size-capped before it is read** -- the zip's stated size and a
  capped read (the stated size may lie), and a cap on the number of elements;
* **XML with a DTD is refused** -- a product's metadata never declares one, so
  entities (internal, external, nested) are never expanded;
* **radiometry must be plausible** -- quantification and offsets finite and in
  the range Sentinel-2 uses; one bad product is refused by itself.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, Optional
from xml.etree import ElementTree as ET
from xml.parsers import expat

import rasterio
from rasterio.errors import RasterioIOError

from ..jobs import InputError
from .radiometry import ImplausibleRadiometry

__all__ = [
    "METADATA_MAX_BYTES",
    "METADATA_MAX_ELEMENTS",
    "MEMBER_MAX_SIDE",
    "QUANTIFICATION_RANGE",
    "ImplausibleRadiometry",
    "check_product_radiometry",
    "member_driver",
    "open_member",
    "parse_metadata",
    "product_env",
    "read_metadata_file",
    "read_metadata_member",
]

#: Largest metadata file read (bytes). Real ``MTD_MSIL2A.xml`` are 50-100 KB, old multi-tile ones a few MB.
METADATA_MAX_BYTES = 16 * 1024 * 1024
#: Most XML elements read from one metadata file: real ones hold a few thousand.
METADATA_MAX_ELEMENTS = 200_000
#: Quantification values accepted (Sentinel-2 uses 10000 for L1C and L2A reflectance).
QUANTIFICATION_RANGE = (100.0, 1_000_000.0)
#: Widest and tallest member read (pixels): a Sentinel-2 tile is 10980 px at 10 m. A crafted header may claim
#: far more, and decoding it would allocate what the header says.
MEMBER_MAX_SIDE = 12000
#: Drivers a product member may be opened with, by its extension.
MEMBER_DRIVERS: Dict[str, str] = {".jp2": "JP2OpenJPEG", ".tif": "GTiff", ".tiff": "GTiff"}
#: GDAL virtual file systems that reach the network; a product is read from local files (or a local zip) only.
_NETWORK_PREFIXES = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift", "/vsiwebhdfs",
                     "/vsihdfs", "/vsistdin")


# --------------------------------------------------------------------------- metadata: size, then XML


def _too_big(display: str, name: str, size: int) -> InputError:
    return InputError(f"{display}: {name} is {size / 2**20:.1f} MB; product metadata is at most "
                      f"{METADATA_MAX_BYTES / 2**20:.0f} MB, so it is refused (a damaged or crafted product)")


def read_metadata_member(zf: zipfile.ZipFile, member: str, display: str) -> bytes:
    """The bytes of a metadata member of a zip, refused before reading when the zip says it is too big.

    The stated size is checked first (no decompression at all), then the read is
    capped one byte past the limit, because a crafted zip may state a small size.
    """
    name = PurePosixPath(member).name
    info = zf.getinfo(member)
    if info.file_size > METADATA_MAX_BYTES:
        raise _too_big(display, name, info.file_size)
    with zf.open(info) as fh:
        raw = fh.read(METADATA_MAX_BYTES + 1)
    if len(raw) > METADATA_MAX_BYTES:
        raise _too_big(display, name, len(raw))
    return raw


def read_metadata_file(path: Path, display: str) -> bytes:
    """The bytes of a metadata file on disk, refused when it is larger than any real one."""
    size = path.stat().st_size
    if size > METADATA_MAX_BYTES:
        raise _too_big(display, path.name, size)
    with open(path, "rb") as fh:
        raw = fh.read(METADATA_MAX_BYTES + 1)
    if len(raw) > METADATA_MAX_BYTES:
        raise _too_big(display, path.name, len(raw))
    return raw


class _NoDtd(Exception):
    """Raised from inside expat when the document declares a DTD."""


class _TooManyElements(Exception):
    """Raised from inside expat when the document holds more elements than any real metadata."""


def parse_metadata(raw: bytes, display: str, name: str) -> ET.Element:
    """Parse product metadata into an ElementTree, refusing any DTD and documents with too many elements.

    expat is driven directly (not through ``ET.fromstring``) so that a
    ``<!DOCTYPE`` stops the parse before any entity is declared, let alone
    expanded: Sentinel-2 metadata never has one. Tags come out as
    ``{namespace}local``, as ElementTree writes them.
    """
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    count = [0]

    def tag(qname: str) -> str:
        return "{" + qname if "}" in qname else qname

    def start(qname: str, attrs: Dict[str, str]) -> None:
        count[0] += 1
        if count[0] > METADATA_MAX_ELEMENTS:
            raise _TooManyElements()
        builder.start(tag(qname), {tag(k): v for k, v in attrs.items()})

    def refuse_dtd(*_args: object) -> None:
        raise _NoDtd()

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda qname: builder.end(tag(qname))
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(raw, True)
    except _NoDtd:
        raise InputError(f"{display}: {name} declares a DTD (<!DOCTYPE>), which Sentinel-2 metadata never does; "
                         "refused (entities could expand it without bound)") from None
    except _TooManyElements:
        raise InputError(f"{display}: {name} holds more than {METADATA_MAX_ELEMENTS} XML elements, far more than "
                         "real product metadata; refused (a damaged or crafted product)") from None
    except expat.ExpatError as exc:
        raise InputError(f"{display}: {name} is not valid XML ({exc})") from None
    root = builder.close()
    if root is None:
        raise InputError(f"{display}: {name} is empty")
    return root


# --------------------------------------------------------------------------- radiometry


def check_product_radiometry(display: str, name: str, quantification: float, offset_tag: str,
                             offsets: Dict[str, float]) -> None:
    """Refuse a product whose quantification or offsets cannot be Sentinel-2's, before any pixel is read.

    ``1e999`` parses as infinity, ``1e-300`` makes the band scale 1e+300 and a
    NaN offset turns every pixel invalid: each would write nonsense or nothing
    with no error. Real products have quantification 10000 and offsets 0 or
    -1000 DN; the ranges below leave room for any future convention.
    """
    low, high = QUANTIFICATION_RANGE
    if not math.isfinite(quantification) or not low <= quantification <= high:
        raise ImplausibleRadiometry(
            f"{display}: quantification value {quantification:g} in {name} is not plausible (Sentinel-2 uses "
            f"10000; accepted {low:g} to {high:g}); the product is refused")
    for band in sorted(offsets):
        value = offsets[band]
        if not math.isfinite(value) or abs(value) > quantification:
            raise ImplausibleRadiometry(
                f"{display}: {offset_tag} {value:g} DN of band {band} in {name} is not plausible (Sentinel-2 uses "
                f"0 or -1000; accepted within +/-{quantification:g}); the product is refused")


# --------------------------------------------------------------------------- imagery


def member_driver(path: str) -> Optional[str]:
    """The one GDAL driver a product member may be opened with, from its extension; None when none may."""
    return MEMBER_DRIVERS.get(PurePosixPath(path).suffix.lower())


def _refuse_path(path: str, what: str, display: str, root: Optional[str]) -> None:
    """Refuse a member path that reaches the network, climbs out of a zip, or (links resolved) leaves its folder."""
    lowered = path.lower()
    if "://" in lowered or any(lowered.startswith(p) or f"{p}/" in lowered for p in _NETWORK_PREFIXES):
        raise InputError(f"{display}: {what} ({path}) is a network path; products are read from local files only")
    if lowered.startswith("/vsizip/"):
        inner = path.split(".zip/", 1)[-1] if ".zip/" in lowered else ""
        if any(part == ".." for part in inner.split("/")):
            raise InputError(f"{display}: {what} ({inner}) climbs out of the zip ('..'); refused")
        return
    if root is not None:
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(Path(root).resolve()):
            raise InputError(f"{display}: {what} ({Path(path).name}) leads outside the product folder (to "
                             f"{resolved}); refused")


def open_member(path: str, what: str, display: str, root: Optional[str] = None):
    """Open one raster member of a product with only the driver its format allows; InputError otherwise.

    ``what`` names the member in messages (``band B02``, ``the SCL``);
    ``root`` is the product folder on disk (None inside a zip), which a
    member, links resolved, must not leave.
    """
    _refuse_path(path, what, display, root)
    driver = member_driver(path)
    name = PurePosixPath(path).name
    if driver is None:
        raise InputError(f"{display}: {what} ({name}) is neither JPEG 2000 nor GeoTIFF; refused")
    try:
        ds = rasterio.open(path, driver=driver, sharing=False)
    except RasterioIOError as exc:
        raise InputError(f"{display}: {what} ({name}) is not a readable {driver} file, whatever its name says; "
                         f"refused ({' '.join(str(exc).split())})") from None
    if max(ds.width, ds.height) > MEMBER_MAX_SIDE:
        size = f"{ds.width} x {ds.height}"
        ds.close()
        raise InputError(f"{display}: {what} ({name}) claims {size} px, more than any Sentinel-2 tile "
                         f"(10980 x 10980 at 10 m); refused (a damaged or crafted product)")
    return ds


def product_env(**options: object) -> rasterio.Env:
    """A GDAL environment for reading products: no network reads even through a file GDAL was told to follow.

    ``CPL_VSIL_CURL_ALLOWED_EXTENSIONS`` set to an extension no file has makes
    ``/vsicurl/`` (and the cloud file systems built on it) refuse every URL;
    it backs up :func:`open_member`, which already refuses formats that can
    name other files.
    """
    return rasterio.Env(CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".no-network-reads-from-products",
                        GDAL_HTTP_MAX_RETRY="0", **options)
