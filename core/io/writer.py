"""Writing GeoTIFF outputs that never exist half-written: checks before work, a streaming sink, atomic commit.

Why a module of its own: every job (super-resolution, segmentation, trust
maps, stacks) writes large rasters row by row, and the rules are the same for
all: refuse an output that cannot be written before any work is spent, write
into a hidden temporary file beside the target, and rename it over the target
only when GDAL reported no error at any step (rows, overviews, close).

GDAL does not report every failure to its caller: with GDAL < 3.7 closing a
file returns nothing, and a disk that fills up while the last blocks, the
overviews or the directory are flushed is only *logged*. So, before the
rename, the finished temporary file is opened again and checked: its size,
bands and overviews, every block's place in the file, and the last block of
each level decoded. A file that fails is deleted and the previous output kept.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from ..jobs import OutputError
from .atomic import remove_orphans, replace_file, temp_path_for
from .rasters import Grid

PathLike = Union[str, os.PathLike]

try:  # GDAL errors rasterio raises as exceptions (block writes, overviews), not OSError subclasses
    from rasterio._err import CPLE_BaseError as CPLError
except ImportError:  # pragma: no cover - rasterio moved it
    CPLError = RasterioError
#: Free bytes below which a failed write is put down to a full disk.
_NEARLY_FULL = 1 << 20
#: What a failing GDAL call may raise through rasterio.
GDAL_ERRORS = (OSError, RasterioError, CPLError)

#: Block size of every GeoTIFF written here (QGIS and GDAL read 512-px tiles efficiently).
BLOCK = 512


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


def geotiff_profile(grid: Grid, dtype: str, count: int, nodata: Optional[float]) -> Dict[str, object]:
    """Tiled (512) DEFLATE GeoTIFF profile; predictor 2 for integers, 3 for floats; deflate level 1.

    No ``NUM_THREADS``: GDAL 3.6's multi-threaded compression deadlocked here
    while building overviews of a 12k x 12k output (all threads in futex waits).
    Level 1 instead of zlib's 6: writing and overviews are on the critical path
    of every job; on a 4-band 2304 x 2304 SR output level 1 took about 1 s less
    of 11-13 s and the file was no larger (38 MB against 39 MB), because the
    predictor already does most of the work on imagery.
    """
    floating = np.issubdtype(np.dtype(dtype), np.floating)
    return {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": count, "dtype": dtype,
        "crs": grid.crs, "transform": grid.transform, "nodata": nodata, "tiled": True,
        "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate", "zlevel": 1,
        "predictor": 3 if floating else 2,
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
        remove_orphans(self.path)
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
        except GDAL_ERRORS as exc:
            self._remove_tmp()
            raise OutputError(f"{self.path}: cannot create the output ({exc})") from exc
        except BaseException:  # Ctrl-C or SIGTERM as the file was being created: it must not stay behind
            self._remove_tmp()
            raise
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

    def build_overviews(self, factors: List[int]) -> None:
        """The one place that builds overviews (kept separate so a test can make it fail as GDAL does)."""
        self._ds.build_overviews(factors, Resampling.average)
        self._ds.update_tags(ns="rio_overview", resampling="average")

    def close_dataset(self) -> None:
        """The one place that closes the file (GDAL flushes the last blocks and the directory here)."""
        self._ds.close()

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except GDAL_ERRORS as exc:
            if isinstance(exc, OutputError):
                raise
            reason = _reason(exc, self.path.parent).replace(str(self.tmp), "the temporary file")
            raise OutputError(f"{self.path}: writing failed: {reason}; {self._kept()}") from exc

    def _kept(self) -> str:
        return "the previous file was kept" if self.path.exists() else "nothing was written"

    def set_nodata(self, value: Optional[float]) -> None:
        self._ds.nodata = value

    def set_band_tags(self, tags_per_band: Dict[int, Dict[str, str]]) -> None:
        """Band-level metadata (1-based band -> tags), e.g. WAVELENGTH so GIS software knows each band."""
        for bidx, tags in tags_per_band.items():
            self._ds.update_tags(bidx, **tags)

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
                self._guarded(self.build_overviews, factors)
            self._guarded(self.close_dataset)
            self._verify(factors)
            replace_file(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def _verify(self, factors: List[int]) -> None:
        """Refuse a temporary file GDAL could not finish, though it said nothing (see the module docstring)."""
        problem = verify_geotiff(self.tmp, self.width, self.height, self.count, len(factors),
                                 crs=self.profile.get("crs"))
        if problem:
            problem = problem.replace(str(self.tmp), "the temporary file")
            raise OutputError(f"{self.path}: writing failed: {problem}; {self._kept()}")

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




def _reason(exc: BaseException, folder: Optional[Path] = None) -> str:
    """GDAL's words for a failure, or "the disk is full" when that is what happened.

    GDAL often reports a full disk only indirectly (a directory it cannot read
    back), so the free space of ``folder`` is asked too.
    """
    text = str(exc)
    if getattr(exc, "errno", None) == errno.ENOSPC or "no space left" in text.lower():
        return "the disk is full"
    if folder is not None:
        try:
            if shutil.disk_usage(folder).free < _NEARLY_FULL:
                return f"the disk is full ({text or type(exc).__name__})"
        except OSError:
            pass
    return text or type(exc).__name__


def verify_geotiff(path: PathLike, width: int, height: int, count: int, overviews: int,
                   crs: Optional[object] = None) -> Optional[str]:
    """What is wrong with a GeoTIFF this module just wrote, or None when it is whole.

    Checks, without reading every pixel: it opens without GDAL complaining
    (a cut file loses its georeferencing tags with only a warning); size,
    bands, CRS (when ``crs`` is given) and number of overviews are those
    written; every block of every level has its bytes inside the file (a full
    disk leaves blocks pointing past the end, or at nothing); the last block
    of every level decodes.
    """
    p = Path(path)
    complaints: List[str] = []
    try:
        with _gdal_complaints(complaints):
            size = p.stat().st_size
            with rasterio.open(p) as ds:
                if (ds.width, ds.height, ds.count) != (width, height, count):
                    return (f"the file holds {ds.width}x{ds.height} px x {ds.count} band(s) instead of "
                            f"{width}x{height} x {count}")
                if crs is not None and ds.crs != crs:
                    return "the file lost its coordinate reference system"
                found = len(ds.overviews(1))
                if found != overviews:
                    return f"the file holds {found} overview level(s) instead of {overviews}"
                bands = list(range(1, count + 1)) if ds.interleaving is not None and \
                    ds.interleaving.name.lower() == "band" else [1]
            for level in [None, *range(overviews)]:
                kwargs = {} if level is None else {"overview_level": level}
                with rasterio.open(p, **kwargs) as ds:
                    problem = _check_blocks(ds, bands, size)
                    if problem:
                        where = "full resolution" if level is None else f"overview {level + 1}"
                        return f"{problem} ({where})"
    except GDAL_ERRORS as exc:
        return f"the finished file cannot be read back: {_reason(exc, p.parent)}"
    if complaints:
        return f"reading the finished file back, GDAL said: {complaints[0]}"
    return None


class _Complaints(logging.Handler):
    """Collects what GDAL reports (through rasterio's logger) while a file is read back."""

    def __init__(self, sink: List[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(" ".join(record.getMessage().split()))


@contextlib.contextmanager
def _gdal_complaints(sink: List[str]) -> Iterator[None]:
    logger = logging.getLogger("rasterio._env")  # where rasterio sends GDAL's warnings and errors
    handler = _Complaints(sink)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _check_blocks(ds, bands: Sequence[int], size: int) -> Optional[str]:
    bh, bw = ds.block_shapes[0]
    rows, cols = -(-ds.height // bh), -(-ds.width // bw)
    for b in bands:
        for y in range(rows):
            for x in range(cols):
                offset = ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=b)
                nbytes = ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=b)
                if not offset or not nbytes or int(offset) + int(nbytes) > size:
                    return f"block {x},{y} of band {b} is missing or lies past the end of the file"
    last = Window((cols - 1) * bw, (rows - 1) * bh, ds.width - (cols - 1) * bw, ds.height - (rows - 1) * bh)
    ds.read(bands[-1], window=last)
    return None
