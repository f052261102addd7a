"""Builders of real Sentinel-2 products for tests: ``.SAFE`` folders with JP2 bands, their zips, dated rasters.

Why a helper module rather than fixtures only: several test files need the
same products with different dates, clouds and baselines, so the builders take
arguments. Import it as ``from tests.s2_fixtures import make_safe`` (pytest
runs with ``pythonpath = "."``, and ``tests`` has no ``__init__.py``, so it is a
namespace package rooted at the repository).

Everything is written through GDAL in the formats the real products use: the
bands are lossless JPEG 2000 (JP2OpenJPEG, ``QUALITY=100 REVERSIBLE=YES``) on a
UTM grid, the scene classification (SCL) is a JPEG 2000 at 20 m, and the
metadata file follows the layout of ``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml``
(namespaced root, ``Product_Info``, ``Product_Organisation`` listing the image
files without extension, quantification and per-band offsets under
``Product_Image_Characteristics``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import rasterio
from affine import Affine
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy

#: The repository root (where ``python -c`` probes must run to import ``core``).
ROOT = Path(__file__).resolve().parents[1]
CRS_UTM34N = "EPSG:32634"
ORIGIN = (499980.0, 5600040.0)
BAND_IDS = {"B01": 0, "B02": 1, "B03": 2, "B04": 3, "B05": 4, "B06": 5, "B07": 6, "B08": 7, "B8A": 8,
            "B09": 9, "B10": 10, "B11": 11, "B12": 12}
#: Central wavelengths a Sentinel-2B product lists for its 10 m bands (its Spectral_Information_List).
S2B_CENTRAL_NM = {"B02": 492.3, "B03": 559.0, "B04": 665.0, "B08": 833.0}
BANDS_10M = ("B02", "B03", "B04", "B08")


def write_jp2(path: Path, data: np.ndarray, transform: Affine, crs: str = CRS_UTM34N) -> Path:
    """One-band lossless JPEG 2000 (the driver only copies, so build it in memory first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name,
                   crs=crs, transform=transform)
    with MemoryFile() as mem:
        with mem.open(**profile) as tmp:
            tmp.write(data, 1)
        with mem.open() as src:
            rio_copy(src, path, driver="JP2OpenJPEG", QUALITY="100", REVERSIBLE="YES")
    return path


def textured_scene(size: int, seed: int = 0) -> np.ndarray:
    """A smooth random field with fields-and-roads-like texture, in reflectance 0.05..0.45."""
    rng = np.random.default_rng(seed)
    spec = np.fft.fft2(rng.normal(size=(size, size)))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    spec *= 1.0 / (1.0 + (np.hypot(fx, fy) / 0.08) ** 2)
    field = np.real(np.fft.ifft2(spec))
    field = (field - field.min()) / (field.max() - field.min())
    return (0.05 + 0.4 * field).astype(np.float64)


def fourier_shift(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``img`` with its content moved by (dy, dx) pixels (down, right), exactly for a periodic image."""
    fy = np.fft.fftfreq(img.shape[0])[:, None]
    fx = np.fft.fftfreq(img.shape[1])[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(img) * np.exp(-2j * np.pi * (fy * dy + fx * dx))))


def to_dn(refl: np.ndarray, offset_dn: int = -1000, quantification: float = 10000.0) -> np.ndarray:
    """Reflectance -> stored DN under ``reflectance = (DN + offset) / quantification`` (0 kept for nodata)."""
    return np.clip(np.round(refl * quantification - offset_dn), 1, 65535).astype(np.uint16)


def _mtd_xml(level: str, name: str, start: str, baseline: str, spacecraft: str, image_files: Sequence[str],
             quantification: float, offsets: Optional[Dict[str, int]], spectral: bool) -> str:
    """Metadata text in the layout of MTD_MSIL2A.xml / MTD_MSIL1C.xml (only the parts readers use)."""
    l2a = level == "L2A"
    root = "Level-2A_User_Product" if l2a else "Level-1C_User_Product"
    ns = f"https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_{'Level-2A' if l2a else 'Level-1C'}.xsd"
    files = "\n".join(f"          <IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    if l2a:
        quant = (f"<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit=\"none\">{quantification:g}"
                 "</BOA_QUANTIFICATION_VALUE><AOT_QUANTIFICATION_VALUE unit=\"none\">1000.0"
                 "</AOT_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>")
    else:
        quant = f"<QUANTIFICATION_VALUE unit=\"none\">{quantification:g}</QUANTIFICATION_VALUE>"
    offset_xml = ""
    if offsets is not None:
        tag, wrapper = ("BOA_ADD_OFFSET", "BOA_ADD_OFFSET_VALUES_LIST") if l2a else ("RADIO_ADD_OFFSET",
                                                                                     "Radiometric_Offset_List")
        items = "".join(f'<{tag} band_id="{BAND_IDS[b]}">{v}</{tag}>' for b, v in offsets.items())
        offset_xml = f"<{wrapper}>{items}</{wrapper}>"
    spectral_xml = ""
    if spectral:
        items = "".join(
            f'<Spectral_Information bandId="{BAND_IDS[b]}" physicalBand="B{int(b[1:])}"><RESOLUTION>10</RESOLUTION>'
            f'<Wavelength><CENTRAL unit="nm">{S2B_CENTRAL_NM[b]:g}</CENTRAL></Wavelength></Spectral_Information>'
            for b in BANDS_10M)
        spectral_xml = f"<Spectral_Information_List>{items}</Spectral_Information_List>"
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:{root} xmlns:n1="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{start}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{start}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{name}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI{level[1:]}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Datatake datatakeIdentifier="G{name[:3]}_{start[:4]}">
        <SPACECRAFT_NAME>{spacecraft}</SPACECRAFT_NAME>
        <DATATAKE_SENSING_START>{start}</DATATAKE_SENSING_START>
      </Datatake>
      <Query_Options completeSingleTile="true"><PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT></Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule granuleIdentifier="test" imageFormat="JPEG2000">
{files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
      {quant}
      {offset_xml}
      {spectral_xml}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:{root}>
"""


def make_safe(
    folder: Path,
    *,
    level: str = "L2A",
    date: str = "2023-05-12",
    time: str = "095559",
    tile: str = "34UDA",
    baseline: str = "05.09",
    spacecraft: str = "Sentinel-2B",
    bands: Optional[Dict[str, np.ndarray]] = None,
    scl: Optional[np.ndarray] = None,
    size: int = 60,
    offset_dn: Optional[int] = -1000,
    quantification: float = 10000.0,
    origin: Tuple[float, float] = ORIGIN,
    spectral: bool = True,
    omit: Sequence[str] = (),
) -> Path:
    """Write a ``.SAFE`` folder under ``folder`` and return its path.

    ``bands``: band name -> uint16 DN array (default: a textured scene per band,
    stored with ``offset_dn``). ``scl``: uint8 classes at 20 m (L2A only; default
    all 4 = vegetation). ``offset_dn=None`` leaves the offsets out of the
    metadata, as products before baseline 04.00 do. ``omit``: band files not to
    write (to make a broken product).
    """
    ymd = date.replace("-", "")
    sat = {"Sentinel-2A": "S2A", "Sentinel-2B": "S2B"}.get(spacecraft, "S2C")
    base = baseline.replace(".", "")
    name = f"{sat}_MSI{level}_{ymd}T{time}_N{base}_R079_T{tile}_{ymd}T120000.SAFE"
    safe = folder / name
    granule = f"{level}_T{tile}_A032000_{ymd}T{time}"
    stem = f"T{tile}_{ymd}T{time}"
    t10 = Affine(10.0, 0.0, origin[0], 0.0, -10.0, origin[1])
    t20 = Affine(20.0, 0.0, origin[0], 0.0, -20.0, origin[1])
    if bands is None:
        bands = {b: to_dn(textured_scene(size, seed=i) * (1.0 + 0.2 * i), offset_dn or 0)
                 for i, b in enumerate(BANDS_10M)}
    image_files = []
    for band, dn in bands.items():
        rel = (f"GRANULE/{granule}/IMG_DATA/R10m/{stem}_{band}_10m" if level == "L2A"
               else f"GRANULE/{granule}/IMG_DATA/{stem}_{band}")
        image_files.append(rel)
        if band not in omit:
            write_jp2(safe / f"{rel}.jp2", np.asarray(dn, dtype=np.uint16), t10)
    if level == "L2A":
        if scl is None:
            scl = np.full((size // 2, size // 2), 4, dtype=np.uint8)
        rel = f"GRANULE/{granule}/IMG_DATA/R20m/{stem}_SCL_20m"
        image_files.append(rel)
        if "SCL" not in omit:
            write_jp2(safe / f"{rel}.jp2", np.asarray(scl, dtype=np.uint8), t20)
    offsets = None if offset_dn is None else {b: offset_dn for b in BAND_IDS}
    start = f"{date}T{time[:2]}:{time[2:4]}:{time[4:]}.024Z"
    xml = _mtd_xml(level, name[:-5], start, baseline, spacecraft, image_files, quantification, offsets, spectral)
    (safe / f"MTD_MSI{level}.xml").write_text(xml, encoding="utf-8")
    return safe


def zip_safe(safe: Path, zip_path: Optional[Path] = None) -> Path:
    """The product as the Copernicus Data Space delivers it: a zip holding the ``.SAFE`` folder."""
    zip_path = zip_path or safe.with_name(safe.name[:-5] + ".zip")
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(safe.rglob("*")):
            zf.write(p, p.relative_to(safe.parent).as_posix())
    return zip_path


def write_geotiff(path: Path, data: np.ndarray, transform: Affine = None, crs: str = CRS_UTM34N,
                  nodata: Optional[float] = 0, descriptions: Sequence[str] = (), tags: Optional[dict] = None,
                  band_tags: Optional[Sequence[dict]] = None) -> Path:
    """A plain GeoTIFF ([bands,] rows, cols) as analysts export them (EO Browser, QGIS)."""
    data = data if data.ndim == 3 else data[None]
    transform = transform or Affine(10.0, 0.0, ORIGIN[0], 0.0, -10.0, ORIGIN[1])
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype.name, crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(data)
        for i, d in enumerate(descriptions, start=1):
            ds.set_band_description(i, d)
        if tags:
            ds.update_tags(**tags)
        for i, bt in enumerate(band_tags or (), start=1):
            ds.update_tags(i, **bt)
    return path
