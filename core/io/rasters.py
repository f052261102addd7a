"""Raster reading and writing for inference: frames on one grid, radiometry, atomic GeoTIFFs.

Why a module of its own: inference must read revisits that come on different
grids or CRSs as if they shared one, read only the rows a strip of tiles needs,
and write outputs that never exist half-written. Those are GIS concerns, kept
apart from the tiling arithmetic (``tiling.py``) and the models (``inference.py``).

Conventions: a *frame* is one band of one input raster, seen on the reference
grid (the first input's grid; its UTM zone when that one is in degrees). Frames
read as float32 reflectance plus a boolean valid mask, never NaN-poisoned.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import secrets
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
BandSpec = Union[int, str, None]

#: Sentinel-2 L1C/L2A digital numbers are reflectance x 10000.
S2_DN_SCALE = 1e-4
#: Block size of every GeoTIFF written here (QGIS and GDAL read 512-px tiles efficiently).
BLOCK = 512
#: GDAL block cache during inference, in MB: bounded so peak memory does not follow the raster size.
GDAL_CACHE_MB = 128
#: Side of the decimated read used to judge how clear a frame is and what its units are.
SAMPLE_SIDE = 256


class InputError(ValueError):
    """An input raster, band or extent that cannot be used; the message names the file and the problem."""


class OutputError(OSError):
    """An output that cannot be written (folder missing, not writable, disk full)."""


# --------------------------------------------------------------------------- radiometry


@dataclass(frozen=True)
class Radiometry:
    """Linear map between stored values and reflectance: ``reflectance = value * scale + offset``."""

    scale: float = 1.0
    offset: float = 0.0
    source: str = "values taken as reflectance"

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.offset == 0.0

    def to_reflectance(self, values: np.ndarray) -> np.ndarray:
        if self.scale == 1.0 and self.offset == 0.0:
            return values
        return values * np.float32(self.scale) + np.float32(self.offset)

    def from_reflectance(self, refl: np.ndarray, inplace: bool = False) -> np.ndarray:
        if self.scale == 1.0 and self.offset == 0.0:
            return refl
        if not inplace:
            return (refl - np.float32(self.offset)) / np.float32(self.scale)
        refl -= np.float32(self.offset)
        refl /= np.float32(self.scale)
        return refl


def detect_radiometry(ds, bidx: int, sample: np.ndarray, dtype: str) -> Radiometry:
    """Choose the value -> reflectance map of one band.

    Order: the raster's own scale/offset metadata when set; else integer values
    above 1.5 are taken as Sentinel-2 digital numbers (x 1e-4, the L1C/L2A
    convention); float values above 100 likewise (DN stored as float); anything
    else is taken as reflectance already. ``sample`` holds valid values from a
    decimated read.
    """
    scale = float(ds.scales[bidx - 1]) if ds.scales else 1.0
    offset = float(ds.offsets[bidx - 1]) if ds.offsets else 0.0
    if (scale, offset) != (1.0, 0.0):
        return Radiometry(scale, offset, f"scale {scale:g} and offset {offset:g} from the raster's metadata")
    high = float(np.percentile(sample, 99)) if sample.size else 0.0
    if np.issubdtype(np.dtype(dtype), np.integer) and high > 1.5:
        return Radiometry(S2_DN_SCALE, 0.0, "no scale metadata; integer values read as Sentinel-2 DN x 1e-4")
    if np.issubdtype(np.dtype(dtype), np.floating) and high > 100.0:
        return Radiometry(S2_DN_SCALE, 0.0, "no scale metadata; float values above 100 read as Sentinel-2 DN x 1e-4")
    return Radiometry()


# --------------------------------------------------------------------------- opening and bands


def open_raster(path: PathLike):
    """Open a raster for reading or raise :class:`InputError` saying why it cannot be."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a raster file")
    try:
        ds = rasterio.open(p)
    except RasterioIOError as exc:
        raise InputError(f"{p}: not a raster GDAL can read ({exc})") from exc
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
        kw = {"window": window}
        data = self.reader.read(self.bidx, out_dtype="float32", **kw)
        valid = np.isfinite(data)
        mode, nodata = self._mask_mode()
        if mode == "nodata" and nodata is not None and not np.isnan(nodata):
            valid &= data != np.float32(nodata)
        elif mode == "read":  # an internal mask or alpha band: ask GDAL (a second read)
            valid &= self.reader.read_masks(self.bidx, **kw) > 0
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

        Judges clarity and units cheaply. Read as full-resolution strips then
        strided: GDAL's own decimated read (``out_shape``) fetches blocks pixel
        by pixel when a file has no overviews (1.5 s for a 1k raster here).
        """
        k = max(1, int(math.ceil(max(window.height, window.width) / SAMPLE_SIDE)))
        r_start, c_start = int(window.row_off), int(window.col_off)
        r_stop, c_stop = r_start + int(window.height), c_start + int(window.width)
        rows_per_read = k * max(1, 512 // k)
        datas, valids = [], []
        for r0 in range(r_start, r_stop, rows_per_read):
            n = min(rows_per_read, r_stop - r0)
            d, v = self._read(Window(c_start, r0, c_stop - c_start, n))
            datas.append(d[::k, ::k])
            valids.append(v[::k, ::k])
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

    def inspect(self, window: Window) -> None:
        """Fill each frame's valid fraction and radiometry from a decimated read of ``window``."""
        for f in self.frames:
            data, valid = f.sample(window)
            f.valid_fraction = float(valid.mean()) if valid.size else 0.0
            src = f.reader if not isinstance(f.reader, WarpedVRT) else f.reader.src_dataset
            f.radiometry = detect_radiometry(src, f.bidx, data[valid], f.dtype)
            refl = f.radiometry.to_reflectance(data[valid])
            f.mean_reflectance = float(refl.mean()) if refl.size else 0.0
        # A frame with no valid sample cannot show its units; borrow them from a frame of the
        # same type (the reference frame sets the output's units even when it is all cloud).
        for f in self.frames:
            if f.valid_fraction == 0.0 and f.radiometry.source == Radiometry().source:
                donor = next((g for g in self.frames if g.valid_fraction > 0 and g.dtype == f.dtype), None)
                if donor is not None:
                    f.radiometry = donor.radiometry


def _is_whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-6


# --------------------------------------------------------------------------- output


def check_output_path(path: PathLike, inputs: Sequence[PathLike] = ()) -> Path:
    """Refuse an output that cannot be written, before any computation is spent on it."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p}: is a folder; give a file name such as {p / 'output.tif'}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{p}: the folder {parent} does not exist")
    resolved = p.resolve()
    for q in inputs:
        if Path(q).resolve() == resolved:
            raise OutputError(f"{p}: is also an input; choose another output file")
    try:
        fd = os.open(parent / f".{p.name}.probe-{secrets.token_hex(4)}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise OutputError(f"{p}: cannot write in {parent} ({exc.strerror or exc})") from exc
    else:
        os.close(fd)
        for probe in parent.glob(f".{p.name}.probe-*"):
            try:
                probe.unlink()
            except OSError:
                pass
    return p


def temp_path_for(path: Path, suffix: str = "") -> Path:
    """Hidden temporary file beside ``path`` (same folder, so the final rename is atomic)."""
    return path.parent / f".{path.name}.partial-{secrets.token_hex(4)}{suffix}"


def geotiff_profile(grid: Grid, dtype: str, count: int, nodata: Optional[float]) -> Dict[str, object]:
    """Tiled (512) DEFLATE GeoTIFF profile; predictor 2 for integers, 3 for floats.

    No ``NUM_THREADS``: GDAL 3.6's multi-threaded compression deadlocked here
    while building overviews of a 12k x 12k output (all threads in futex waits).
    """
    floating = np.issubdtype(np.dtype(dtype), np.floating)
    return {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": count, "dtype": dtype,
        "crs": grid.crs, "transform": grid.transform, "nodata": nodata, "tiled": True,
        "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate", "predictor": 3 if floating else 2,
        "BIGTIFF": "IF_SAFER",
    }


def overview_factors(width: int, height: int, min_side: int = 128) -> List[int]:
    """2, 4, 8 ... while the overview stays at least ``min_side`` pixels on its short side."""
    factors, f = [], 2
    while min(width, height) // f >= min_side:
        factors.append(f)
        f *= 2
    return factors


class GeoTiffSink:
    """A GeoTIFF written in row order into a hidden temporary file and renamed only when complete.

    Rows are buffered until whole rows of 512-pixel blocks can be written, so
    each compressed block is written once. :meth:`commit` adds internal
    overviews and renames; :meth:`abort` (also on any exception inside a
    ``with`` block) deletes the temporary file.
    """

    def __init__(self, path: PathLike, profile: Dict[str, object], tags: Optional[Dict[str, str]] = None,
                 descriptions: Optional[Sequence[str]] = None, scales: Optional[Tuple[float, float]] = None):
        self.path = Path(path)
        self.tmp = temp_path_for(self.path)
        self.profile = dict(profile)
        self.width = int(profile["width"])
        self.height = int(profile["height"])
        self.count = int(profile["count"])
        self.dtype = np.dtype(profile["dtype"])
        self._pending: List[np.ndarray] = []
        self._pending_rows = 0
        self._next_row = 0
        self.wrote_nodata = False
        try:
            self._ds = rasterio.open(self.tmp, "w", **self.profile)
        except (RasterioIOError, OSError) as exc:
            self._remove_tmp()
            raise OutputError(f"{self.path}: cannot create the output ({exc})") from exc
        try:
            if tags:
                self._ds.update_tags(**tags)
            if descriptions:
                for i, d in enumerate(descriptions, start=1):
                    self._ds.set_band_description(i, d)
            if scales and tuple(scales) != (1.0, 0.0):
                self._ds.scales = [scales[0]] * self.count
                self._ds.offsets = [scales[1]] * self.count
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> GeoTiffSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def write_rows(self, row0: int, rows: np.ndarray) -> None:
        """Append rows ``[count, n, width]`` (must follow the previous ones)."""
        if row0 != self._next_row:
            raise ValueError(f"rows must come in order: expected row {self._next_row}, got {row0}")
        rows = rows.reshape(self.count, -1, self.width)
        self._pending.append(rows.astype(self.dtype, copy=False))
        self._pending_rows += rows.shape[1]
        self._next_row += rows.shape[1]
        if self._pending_rows >= BLOCK:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        block = np.concatenate(self._pending, axis=1) if len(self._pending) > 1 else self._pending[0]
        n = block.shape[1] if final else (block.shape[1] // BLOCK) * BLOCK
        start = self._next_row - self._pending_rows
        if n:
            self._guarded(self.write_window, Window(0, start, self.width, n), block[:, :n])
        rest = block[:, n:]
        self._pending = [rest] if rest.shape[1] else []
        self._pending_rows = rest.shape[1]

    def write_window(self, window: Window, data: np.ndarray) -> None:
        """The one place that writes pixels (kept separate so a test can make the disk 'fill up')."""
        self._ds.write(data, window=window)

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except OSError as exc:
            if isinstance(exc, OutputError):
                raise
            reason = "the disk is full" if getattr(exc, "errno", None) == errno.ENOSPC else str(exc)
            raise OutputError(f"{self.path}: writing failed: {reason}; nothing was written") from exc

    def set_nodata(self, value: Optional[float]) -> None:
        self._ds.nodata = value

    def update_tags(self, **tags: str) -> None:
        """Add metadata known only once every row is written (e.g. a summary of the values)."""
        self._ds.update_tags(**tags)

    def commit(self, overviews: bool = True) -> Path:
        """Write what is left, add overviews, close and rename onto the target path."""
        try:
            self._flush(final=True)
            if self._next_row != self.height:
                raise RuntimeError(f"{self.path}: only {self._next_row} of {self.height} rows were produced")
            factors = overview_factors(self.width, self.height) if overviews else []
            if factors:
                self._guarded(self._ds.build_overviews, factors, Resampling.average)
                self._ds.update_tags(ns="rio_overview", resampling="average")
            self._guarded(self._ds.close)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file (safe to call twice)."""
        try:
            if not self._ds.closed:
                self._ds.close()
        except Exception:  # closing a broken file may fail again; the file goes anyway
            pass
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        for p in (self.tmp, Path(str(self.tmp) + ".aux.xml"), Path(str(self.tmp) + ".ovr")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def gdal_env():
    """rasterio environment with a bounded block cache (peak memory must not follow the raster size)."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


# --------------------------------------------------------------------------- vectors


def write_mask_vectors(mask_path: PathLike, out_path: PathLike, layers: Sequence[str], value: int = 1) -> Dict[str, int]:
    """Polygonize each band of a mask GeoTIFF (pixels == ``value``) into a GeoPackage layer per band.

    Streams through GDAL's polygonizer on the file's bands (``rasterio.features.shapes``
    with band sources), so memory follows the number of polygons, not the raster.
    Written to a temporary file and renamed. Returns polygons per layer.
    """
    from rasterio import features

    out = Path(out_path)
    tmp = temp_path_for(out, ".gpkg")
    counts: Dict[str, int] = {}
    try:
        from osgeo import ogr, osr
    except ImportError as exc:  # pragma: no cover - GDAL's bindings ship with QGIS and Debian
        raise OutputError(f"{out}: writing vectors needs GDAL's Python bindings (osgeo): {exc}") from exc
    ogr.UseExceptions()
    try:
        with rasterio.open(mask_path) as src:
            drv = ogr.GetDriverByName("GPKG")
            vds = drv.CreateDataSource(str(tmp))
            if vds is None:
                raise OutputError(f"{out}: cannot create the GeoPackage")
            srs = osr.SpatialReference()
            srs.ImportFromWkt(src.crs.to_wkt())
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            for bidx, name in enumerate(layers, start=1):
                layer = vds.CreateLayer(name, srs, ogr.wkbPolygon)
                layer.CreateField(ogr.FieldDefn("class", ogr.OFTString))
                layer.CreateField(ogr.FieldDefn("area_m2", ogr.OFTReal))
                defn = layer.GetLayerDefn()
                layer.StartTransaction()
                n = 0
                band = rasterio.band(src, bidx)
                for geom, val in features.shapes(band, mask=band, connectivity=8, transform=src.transform):
                    if int(val) != value:
                        continue
                    g = ogr.CreateGeometryFromJson(json.dumps(geom))
                    feat = ogr.Feature(defn)
                    feat.SetField("class", name)
                    feat.SetField("area_m2", g.GetArea())
                    feat.SetGeometry(g)
                    layer.CreateFeature(feat)
                    n += 1
                layer.CommitTransaction()
                counts[name] = n
            vds = None  # closes the file
        os.replace(tmp, out)
    except BaseException:
        vds = None
        for p in (tmp, Path(str(tmp) + "-journal"), Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        raise
    return counts
