"""Writing GeoTIFF outputs that never exist half-written: checks before work, a streaming sink, atomic commit.

Why a module of its own: every job (super-resolution, segmentation, trust
maps, stacks) writes large rasters row by row, and the rules are the same for
all: refuse an output that cannot be written before any work is spent, write
into a hidden temporary file beside the target, and rename it over the target
only when GDAL reported no error at any step (rows, overviews, close).
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from ..jobs import OutputError
from .atomic import remove_orphans, replace_file, temp_path_for
from .rasters import Grid

PathLike = Union[str, os.PathLike]

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
            replace_file(self.tmp, self.path)
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


