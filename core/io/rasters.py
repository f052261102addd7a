"""Reading rasters for inference: bands, grids, and frames of several inputs on one grid.

Why a module of its own: inference must read revisits that come on different
grids or CRSs as if they shared one, and read only the rows a strip of tiles
needs. Those are GIS concerns, kept apart from the tiling arithmetic
(``core.inference.runner``), the models and the writers (``core.io.writer``).

Conventions: a *frame* is one band of one input raster, seen on the reference
grid (the first input's grid; its UTM zone when that one is in degrees). Frames
read as float32 reflectance plus a boolean valid mask, never NaN-poisoned.
"""

from __future__ import annotations

import logging
import math
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
import rasterio.env
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window

from ..jobs import InputError, error_text
from .radiometry import Radiometry, check_plausible, detect_radiometry
from .s2_untrusted import member_driver

try:  # GDAL errors rasterio raises as exceptions of their own (block reads), not OSError subclasses
    from rasterio._err import CPLE_BaseError as _CPLError
except ImportError:  # pragma: no cover - rasterio moved it
    _CPLError = RasterioError
#: What a failing GDAL read may raise through rasterio.
GDAL_READ_ERRORS = (OSError, RasterioError, _CPLError)

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
BandSpec = Union[int, str, None]

#: GDAL block cache during inference, in MB: bounded so peak memory does not follow the raster size.
GDAL_CACHE_MB = 128
#: Side of the decimated read used to judge how clear a frame is and what its units are.
SAMPLE_SIDE = 256
#: Most pixels one read of :meth:`Frame.sample` may hold (16 MB of float32), whatever the raster's width.
SAMPLE_STRIP_PIXELS = 1 << 22


# --------------------------------------------------------------------------- opening and bands


def open_raster(path: PathLike):
    """Open a raster for reading or raise :class:`InputError` saying why it cannot be."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a raster file")
    driver = member_driver(p.name)  # a .jp2 or .tif is read only as what its name says (a VRT inside is refused)
    try:
        ds = rasterio.open(p, driver=driver) if driver else rasterio.open(p)
    except RasterioIOError as exc:
        # GDAL >= 3.10 already fails here on a truncated GeoTIFF (its directory is cut off), older ones at the read
        if driver:
            raise InputError(f"{p}: not a raster GDAL can read as {driver}, the format its name says "
                             f"({error_text(exc)}): the file is damaged or incomplete (an interrupted copy or "
                             f"download?) or not {driver}; a {p.suffix} file is never read as another format (one "
                             "that may read other files or the network)") from exc
        raise InputError(f"{p}: not a raster GDAL can read ({error_text(exc)}); the file is damaged or incomplete, "
                         "or not a raster") from exc
    if ds.count < 1:
        ds.close()
        raise InputError(f"{p}: holds no raster bands")
    return ds


def describe_bands(ds) -> str:
    """``1 'B2', 2 'B3', 3 (no name)`` for error messages."""
    parts = []
    for i, d in enumerate(ds.descriptions, start=1):
        parts.append(f"{i} {d!r}" if d else f"{i} (no name)")
    return ", ".join(parts)


def resolve_bands(ds, path: PathLike, band: BandSpec) -> List[int]:
    """1-based band indices selected by ``band``.

    ``band`` is a 1-based index, a band name matched (case-insensitively)
    against the band descriptions, or ``"all"`` / ``None`` for every band (a
    raster whose bands are dates). A name that matches no description exactly
    but prefixes several (``B8`` -> ``B8_2023-05-01``, ``B8_2023-05-11``) selects
    them all: those are dates of that band.
    """
    if band is None or (isinstance(band, str) and band.strip().lower() == "all"):
        return list(range(1, ds.count + 1))
    if isinstance(band, str) and band.strip().lstrip("-").isdigit():
        band = int(band.strip())
    if isinstance(band, (int, np.integer)):
        if 1 <= int(band) <= ds.count:
            return [int(band)]
        raise InputError(
            f"{Path(path).name}: band {band} does not exist; the raster has {ds.count} band(s): {describe_bands(ds)}"
        )
    name = str(band).strip().lower()
    descs = [(d or "").strip().lower() for d in ds.descriptions]
    exact = [i for i, d in enumerate(descs, start=1) if d == name]
    if exact:
        return exact[:1]
    prefixed = [
        i for i, d in enumerate(descs, start=1) if d.startswith(name) and d[len(name) : len(name) + 1] in "_- .:"
        and len(d) > len(name)
    ]
    if prefixed:
        return prefixed
    raise InputError(
        f"{Path(path).name}: no band named {band!r}; available bands: {describe_bands(ds)} "
        "(give a 1-based band number or one of these names)"
    )


# --------------------------------------------------------------------------- grids


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and size in pixels."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> Tuple[float, float, float, float]:
        return rasterio.transform.array_bounds(self.height, self.width, self.transform)[0:4]

    def window_bounds(self, window: Window) -> Tuple[float, float, float, float]:
        return rasterio.windows.bounds(window, self.transform)

    def same_as(self, ds) -> bool:
        return (
            ds.crs == self.crs
            and ds.width == self.width
            and ds.height == self.height
            and ds.transform.almost_equals(self.transform, precision=1e-9 * max(1.0, abs(self.transform.a)))
        )


def utm_crs_for(ds) -> CRS:
    """The WGS84 UTM zone of the raster's centre."""
    left, bottom, right, top = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    lon = (left + right) / 2.0
    lat = (bottom + top) / 2.0
    zone = min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def reference_grid(ds, path: PathLike, messages: List[str]) -> Grid:
    """The grid every frame is read on: the raster's own, or its UTM zone when it is in degrees.

    A raster in a geographic CRS has pixels that are not square on the ground;
    super-resolving them would stretch every building, so it is warped to UTM.
    """
    name = Path(path).name
    if ds.crs is None:
        raise InputError(
            f"{name}: has no coordinate reference system (CRS); assign one (e.g. with QGIS 'Assign projection' "
            "or gdal_edit.py -a_srs) before super-resolving"
        )
    if ds.transform == Affine.identity() and not ds.gcps[0]:
        raise InputError(f"{name}: has no georeferencing (identity transform)")
    if ds.crs.is_geographic:
        utm = utm_crs_for(ds)
        transform, width, height = calculate_default_transform(ds.crs, utm, ds.width, ds.height, *ds.bounds)
        zone = utm.to_epsg() % 100
        hemi = "N" if utm.to_epsg() < 32700 else "S"
        messages.append(
            f"{name} is in a geographic CRS ({ds.crs.to_string()}, degrees): warped to UTM zone {zone}{hemi} "
            f"({utm.to_string()}) at {abs(transform.a):.2f} m with bilinear resampling"
        )
        return Grid(utm, transform, int(width), int(height))
    return Grid(ds.crs, ds.transform, ds.width, ds.height)


def window_from_extent(grid: Grid, extent: Optional[Sequence[float]]) -> Window:
    """The LR-grid window covering ``extent`` (minx, miny, maxx, maxy in the grid's CRS), snapped outward."""
    full = Window(0, 0, grid.width, grid.height)
    if extent is None:
        return full
    if len(extent) != 4:
        raise InputError(f"extent must be minx miny maxx maxy, got {list(extent)}")
    minx, miny, maxx, maxy = (float(v) for v in extent)
    if not (maxx > minx and maxy > miny):
        raise InputError(f"extent {list(extent)} is empty (need minx < maxx and miny < maxy)")
    w = rasterio.windows.from_bounds(minx, miny, maxx, maxy, grid.transform)
    eps = 1e-6
    c0 = max(0, math.floor(w.col_off + eps))
    r0 = max(0, math.floor(w.row_off + eps))
    c1 = min(grid.width, math.ceil(w.col_off + w.width - eps))
    r1 = min(grid.height, math.ceil(w.row_off + w.height - eps))
    if c1 <= c0 or r1 <= r0:
        raise InputError(f"extent {list(extent)} does not overlap the raster (bounds {tuple(round(b, 3) for b in grid.bounds)})")
    return Window(c0, r0, c1 - c0, r1 - r0)


# --------------------------------------------------------------------------- frames


@dataclass
class Frame:
    """One band of one input raster, read on the reference grid as reflectance + valid mask."""

    path: Path
    bidx: int
    reader: object  # rasterio dataset or WarpedVRT on the reference grid
    grid: Grid
    dtype: str
    nodata: Optional[float]
    description: str = ""
    radiometry: Radiometry = field(default_factory=Radiometry)
    valid_fraction: float = 1.0
    mean_reflectance: float = 0.0  # over the valid pixels of the decimated read
    scales: Tuple[float, float] = (1.0, 0.0)  # the band's own scale/offset metadata, carried to outputs

    @property
    def label(self) -> str:
        name = f"{self.path.name}:band {self.bidx}"
        return f"{name} ({self.description})" if self.description else name

    def _read(self, window: Window) -> Tuple[np.ndarray, np.ndarray]:
        """Values and valid mask of ``window``; a GDAL failure becomes an :class:`InputError` naming the file.

        GDAL reads blocks lazily, so a truncated or damaged file opens fine and
        fails here, mid-job. rasterio >= 1.4 then says only "Read failed. See
        previous exception for details."; the file, band, rows and GDAL's
        reason (from the exception's causes) are what the analyst needs.
        """
        kw = {"window": window}
        try:
            data = self.reader.read(self.bidx, out_dtype="float32", **kw)
            valid = np.isfinite(data)
            mode, nodata = self._mask_mode()
            if mode == "nodata" and nodata is not None and not np.isnan(nodata):
                valid &= data != np.float32(nodata)
            elif mode == "read":  # an internal mask or alpha band: ask GDAL (a second read)
                valid &= self.reader.read_masks(self.bidx, **kw) > 0
        except GDAL_READ_ERRORS as exc:
            rows = f"rows {int(window.row_off)}-{int(window.row_off + window.height) - 1}"
            raise InputError(f"{self.path}: band {self.bidx} cannot be read ({rows}): {error_text(exc)}; "
                             "the file is damaged or incomplete (an interrupted copy or download?)") from exc
        data[~valid] = 0.0
        return data, valid

    def _mask_mode(self) -> Tuple[str, Optional[float]]:
        """How validity is known: every pixel valid, a nodata value, or a mask GDAL must read.

        Comparing with the nodata value ourselves spares GDAL a second read of
        every strip (``read_masks`` re-reads the data to build the mask).
        """
        flags = {f.name for f in self.reader.mask_flag_enums[self.bidx - 1]}
        if flags == {"all_valid"}:
            return "all_valid", None
        if flags == {"nodata"}:
            return "nodata", self.reader.nodatavals[self.bidx - 1]
        return "read", None

    def sample(self, window: Window) -> Tuple[np.ndarray, np.ndarray]:
        """Every k-th pixel of ``window`` (raw values, valid), about SAMPLE_SIDE on a side.

        Judges clarity and units cheaply. Read as full-resolution rows then
        strided: GDAL's own decimated read (``out_shape``) fetches blocks pixel
        by pixel when a file has no overviews (1.5 s for a 1k raster here).

        Memory stays bounded whatever the raster's size: only a copy of the
        kept pixels outlives each read (a strided *view* would keep its whole
        strip alive), and when a strip of ``k`` full-width rows would be large
        (a 200000-px-wide raster) only the kept rows are read, one at a time.
        """
        k = max(1, int(math.ceil(max(window.height, window.width) / SAMPLE_SIDE)))
        r_start, c_start = int(window.row_off), int(window.col_off)
        r_stop, c_stop = r_start + int(window.height), c_start + int(window.width)
        width = c_stop - c_start
        rows_fit = max(1, SAMPLE_STRIP_PIXELS // max(1, width))  # rows one read may hold
        datas, valids = [], []
        if rows_fit >= k:  # strips of whole multiples of k rows
            rows_per_read = k * max(1, min(512, rows_fit) // k)
            reads = [(r0, min(rows_per_read, r_stop - r0)) for r0 in range(r_start, r_stop, rows_per_read)]
        else:  # wide rasters: only the rows that are kept
            reads = [(r0, 1) for r0 in range(r_start, r_stop, k)]
        for r0, n in reads:
            d, v = self._read(Window(c_start, r0, width, n))
            datas.append(np.ascontiguousarray(d[::k, ::k]))
            valids.append(np.ascontiguousarray(v[::k, ::k]))
            del d, v
        return np.concatenate(datas), np.concatenate(valids)

    def read_padded(self, row0: int, row1: int, col0: int, col1: int) -> Tuple[np.ndarray, np.ndarray]:
        """Reflectance and valid mask of rows/cols ``[row0,row1) x [col0,col1)`` of the grid.

        Parts beyond the raster are reflect-padded from the part inside (context
        for edge tiles only: they are never written out).
        """
        r0, r1 = max(0, row0), min(self.grid.height, row1)
        c0, c1 = max(0, col0), min(self.grid.width, col1)
        if r1 <= r0 or c1 <= c0:
            raise ValueError("strip outside the raster")
        data, valid = self._read(Window(c0, r0, c1 - c0, r1 - r0))
        data = self.radiometry.to_reflectance(data)
        data[~valid] = 0.0
        pads = ((r0 - row0, row1 - r1), (c0 - col0, col1 - c1))
        if any(p for pair in pads for p in pair):
            data = np.pad(data, pads, mode="reflect")
            valid = np.pad(valid, pads, mode="reflect")
        return data.astype(np.float32, copy=False), valid


class FrameSet:
    """Opens input rasters, puts their bands on one grid as :class:`Frame` objects, closes them after.

    Use as a context manager. ``messages`` collects what was done to the data
    (warps, assumed units), worded for the analyst.
    """

    def __init__(self, inputs: Sequence[PathLike], band: BandSpec = 1, messages: Optional[List[str]] = None):
        self.inputs = [Path(p) for p in inputs]
        self.band = band
        self.messages: List[str] = messages if messages is not None else []
        self.frames: List[Frame] = []
        self.grid: Optional[Grid] = None
        self._stack = ExitStack()

    def __enter__(self) -> FrameSet:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _open(self) -> None:
        if not self.inputs:
            raise InputError("no input raster given")
        for i, path in enumerate(self.inputs):
            ds = self._stack.enter_context(open_raster(path))
            if i == 0:
                self.grid = reference_grid(ds, path, self.messages)
            elif ds.crs is None:
                raise InputError(f"{path.name}: has no coordinate reference system (CRS); cannot align it")
            bands = resolve_bands(ds, path, self.band)
            if len(self.inputs) > 1 and len(bands) > 1 and not (
                self.band is None or str(self.band).lower() == "all"
            ):
                raise InputError(f"{path.name}: band {self.band!r} matches {len(bands)} bands; name one band")
            reader = self._reader_for(ds, path)
            for b in bands:
                scale = float(ds.scales[b - 1]) if ds.scales else 1.0
                offset = float(ds.offsets[b - 1]) if ds.offsets else 0.0
                if (scale, offset) != (1.0, 0.0):  # refused before any pixel is read, not 0 valid pixels later
                    check_plausible(scale, offset, f"{path.name} band {b}")
                self.frames.append(
                    Frame(path, b, reader, self.grid, ds.dtypes[b - 1], ds.nodatavals[b - 1],
                          ds.descriptions[b - 1] or "", scales=(scale, offset))
                )

    def _reader_for(self, ds, path: Path):
        grid = self.grid
        assert grid is not None
        if grid.same_as(ds):
            return ds
        name = path.name
        if ds.crs.is_geographic and path == self.inputs[0]:
            pass  # already announced by reference_grid
        else:
            left, bottom, right, top = transform_bounds(ds.crs, grid.crs, *ds.bounds)
            gl, gb, gr, gt = grid.bounds
            if right <= gl or left >= gr or top <= gb or bottom >= gt:
                raise InputError(
                    f"{name}: does not overlap the first input {self.inputs[0].name} "
                    f"(its bounds in {grid.crs.to_string()}: {left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f})"
                )
        aligned = (
            ds.crs == grid.crs
            and math.isclose(ds.transform.a, grid.transform.a)
            and math.isclose(ds.transform.e, grid.transform.e)
            and ds.transform.b == 0 and ds.transform.d == 0 and grid.transform.b == 0 and grid.transform.d == 0
            and _is_whole((ds.transform.c - grid.transform.c) / grid.transform.a)
            and _is_whole((ds.transform.f - grid.transform.f) / grid.transform.e)
        )
        resampling = Resampling.nearest if aligned else Resampling.bilinear
        if path != self.inputs[0]:
            if aligned:
                self.messages.append(f"{name}: same pixel grid as {self.inputs[0].name}, offset by whole pixels; read without resampling")
            elif ds.crs != grid.crs:
                self.messages.append(
                    f"{name}: in {ds.crs.to_string()}, warped onto the grid of {self.inputs[0].name} "
                    f"({grid.crs.to_string()}) with bilinear resampling"
                )
            else:
                self.messages.append(
                    f"{name}: on a different pixel grid than {self.inputs[0].name}; resampled onto it with bilinear resampling"
                )
        vrt = WarpedVRT(
            ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
            resampling=resampling, dtype="float32", nodata=float("nan"),
        )
        return self._stack.enter_context(vrt)

    def inspect(self, window: Window, frames: Optional[Sequence[Frame]] = None) -> None:
        """Fill each frame's valid fraction and radiometry from a decimated read of ``window``.

        ``frames``: only these (the bands a job will read), instead of every frame.
        """
        chosen = list(self.frames if frames is None else frames)
        for f in chosen:
            data, valid = f.sample(window)
            f.valid_fraction = float(valid.mean()) if valid.size else 0.0
            src = f.reader if not isinstance(f.reader, WarpedVRT) else f.reader.src_dataset
            f.radiometry = detect_radiometry(src, f.bidx, data[valid], f.dtype)
            refl = f.radiometry.to_reflectance(data[valid])
            f.mean_reflectance = float(refl.mean()) if refl.size else 0.0
        # A frame with no valid sample cannot show its units; borrow them from a frame of the
        # same type (the reference frame sets the output's units even when it is all cloud).
        for f in chosen:
            if f.valid_fraction == 0.0 and f.radiometry.source == Radiometry().source:
                donor = next((g for g in chosen if g.valid_fraction > 0 and g.dtype == f.dtype), None)
                if donor is not None:
                    f.radiometry = donor.radiometry


def _is_whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-6


def gdal_env():
    """rasterio environment with a bounded block cache (peak memory must not follow the raster size).

    In bytes: rasterio hands an integer ``GDAL_CACHEMAX`` to ``GDALSetCacheMax64``, which counts bytes
    (GDAL's "small values are megabytes" rule applies to the config option, not to that call). Given as 128,
    the cache was 128 *bytes* inside every job: a decimated read of a 2304 px output took 20 s instead of
    0.08 s (``tests/test_gdal_env.py``).
    """
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024)


def in_this_env(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` wrapped to run under the GDAL options in force here and now, from any thread.

    rasterio keeps its options per thread, so a helper thread (the tiler's
    reader) would otherwise read without them: without the bounded block cache
    of :func:`gdal_env`, or the no-network options of a product's environment.
    """
    options = dict(rasterio.env.getenv()) if rasterio.env.hasenv() else {}

    def run(*args: Any, **kwargs: Any) -> Any:
        with rasterio.Env(**options):
            return fn(*args, **kwargs)

    return run
