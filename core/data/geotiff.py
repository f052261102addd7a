"""GeoTIFFs of scenes: reflectance <-> uint16 digital numbers, reading and writing rasters, grid equality.

Why a module of its own: scene folders, synthetic worlds, the demo and the
area tiles all write and read the same kind of GeoTIFF (uint16 DN with 0 as
nodata, deflate-compressed, checked after closing), and a scene is more than
its rasters. :mod:`core.data.scene` re-exports these names. ``SceneError`` lives here
because the raster reader raises it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError

from ..io.writer import CPLError, verify_geotiff
from ..jobs import InputError, OutputError, PathLike, error_text

__all__ = ["SceneError", "RasterData", "to_dn", "from_dn", "read_raster", "write_geotiff", "same_transform",
           "same_crs", "GRID_TOLERANCE"]

_GTIFF_OPTIONS = {"compress": "deflate", "predictor": 2}


class SceneError(InputError):
    """A scene or dataset that cannot be used; the message names the file and the problem.

    An :class:`~core.jobs.InputError` (so a ``ValueError`` too): the CLI and the
    plugin show it as one line.
    """


#: How far (as a fraction of an HR pixel) two grids may disagree and still count as the same grid:
#: float round-off of 10/3 m pixels, never a real shift.
GRID_TOLERANCE = 1e-3


def to_dn(reflectance: np.ndarray, valid: np.ndarray, radiometric_scale: float) -> np.ndarray:
    """Reflectance -> uint16 digital numbers with 0 reserved for invalid pixels.

    Valid pixels are clipped to [1, 65535] so that a dark but valid pixel never
    turns into nodata on the way to disk; NaN/inf pixels are written as nodata.
    """
    finite = np.isfinite(reflectance)
    valid = valid & finite.all(axis=0) if reflectance.ndim == 3 else valid & finite
    dn = np.rint(np.where(finite, reflectance, 0.0) / radiometric_scale)
    dn = np.clip(dn, 1, 65535).astype(np.uint16)
    dn[..., ~valid] = 0
    return dn


def from_dn(
    data: np.ndarray, nodata: Optional[float], radiometric_scale: float, offset: float = 0.0
) -> Tuple[np.ndarray, np.ndarray]:
    """DN [C, H, W] -> (reflectance float32 [C, H, W], valid [H, W]).

    A pixel is invalid when *any* band is nodata or not finite; invalid pixels hold 0.0.
    """
    arr = data.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        bad |= data == nodata
    valid = ~bad.any(axis=0)
    out = (arr + np.float32(offset)) * np.float32(radiometric_scale)
    out = np.where(valid[None], out, np.float32(0.0)).astype(np.float32)
    return out, valid


# ---------------------------------------------------------------------- raster I/O
@dataclass
class RasterData:
    data: np.ndarray  # [C, H, W] as stored
    nodata: Optional[float]
    crs: str
    transform: Affine
    descriptions: List[Optional[str]]
    has_georef: bool


def read_raster(path: PathLike) -> RasterData:
    """Read every band of a raster; refuse anything GDAL cannot open as one, naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            # a plain image without georeferencing is handled by the callers (has_georef)
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                data = ds.read()
                crs = ds.crs.to_string() if ds.crs else ""
                transform = ds.transform
                # GDAL's default transform for a file without georeferencing is identity.
                has_georef = bool(ds.crs) or transform != Affine.identity()
                return RasterData(data, ds.nodata, crs, transform, list(ds.descriptions), has_georef)
    except (RasterioIOError, RasterioError, CPLError) as exc:
        raise SceneError(f"{path}: not a raster GDAL can read, or damaged ({error_text(exc)})") from None


def write_geotiff(
    path: PathLike,
    data: np.ndarray,
    crs: str,
    transform: Affine,
    nodata: Optional[float] = None,
    descriptions: Optional[Sequence[str]] = None,
    tags: Optional[Dict[str, str]] = None,
) -> Path:
    """Write [C, H, W] (or [H, W]) as a compressed GeoTIFF that QGIS places correctly (``tags``: dataset metadata)."""
    path = Path(path)
    if data.ndim == 2:
        data = data[None]
    profile = dict(
        driver="GTiff",
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=data.dtype,
        transform=transform,
        **_GTIFF_OPTIONS,
    )
    if crs:
        profile["crs"] = CRS.from_user_input(crs)
    if nodata is not None:
        profile["nodata"] = nodata
    try:
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(data)
            for i, name in enumerate(descriptions or [], start=1):
                ds.set_band_description(i, name)
            if tags:
                ds.update_tags(**tags)
    except (RasterioError, CPLError) as exc:
        raise OutputError(f"{path}: writing failed ({' '.join(str(exc).split())})") from exc
    # GDAL < 3.7 only logs a failure to flush the file on close (a full disk): read it back.
    problem = verify_geotiff(path, data.shape[2], data.shape[1], data.shape[0], 0, crs=profile.get("crs"))
    if problem:
        raise OutputError(f"{path}: writing failed: {problem}")
    return path


def same_transform(a: Affine, b: Affine, pixel: float) -> bool:
    """Equal affine transforms up to a tiny fraction of ``pixel`` (float round-off, not a shift)."""
    tol = abs(pixel) * GRID_TOLERANCE if pixel else 1e-9
    return all(abs(x - y) <= tol for x, y in zip(tuple(a)[:6], tuple(b)[:6]))


def same_crs(a: str, b: str) -> bool:
    """Equal CRS definitions ("" = no CRS, equal only to "")."""
    if not a or not b:
        return a == b
    if a == b:
        return True
    try:
        return CRS.from_user_input(a) == CRS.from_user_input(b)
    except Exception:  # noqa: BLE001 - an unparsable CRS is simply "not the same"
        return False
