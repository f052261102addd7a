"""The one tiler: tile layout, seam-free blending and the tiled pass, for files and for arrays alike.

Every job that runs a network over a raster (super-resolution, segmentation,
test-time augmentation for the trust map, and evaluation on in-memory scenes)
goes through :func:`run_tiles`, so the pixels an evaluation scores are made
exactly like the pixels the plugin writes: same tiles, same overlap, same
blending, same context padding at the raster's edges.

Why this shape: a model only sees a tile, so pixels near a tile's edge lack
context. Tiles therefore overlap by ``overlap`` input pixels, and each tile's
output is weighted by a raised-cosine ramp over that overlap. With the stride
``tile - overlap`` the falling ramp of one tile and the rising ramp of the next
sum to exactly one, so a constant stays constant and no seam appears. The first
tile starts ``overlap`` pixels *before* the area (context read from the raster
or padded), so the ramps fall outside the area and every output pixel has full
weight from some tile.

Because the tiles form a product grid (same column origins in every tile row),
the sum of weights at (y, x) is ``sum_y(y) * sum_x(x)``: two 1-D arrays, not a
full-size weight image. Output rows are final as soon as the next tile row
starts below them, so :class:`StripBlender` keeps only one tile row of output
in memory and hands finished rows out (memory grows with the width only).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..io.rasters import SAMPLE_SIDE, in_this_env
from ..jobs import check_cancel


def tile_origins(length: int, tile: int, overlap: int) -> Tuple[List[int], int]:
    """Origins (relative to the area, may be negative) of the tiles along one axis.

    Returns ``(origins, tile_len)``. ``tile_len`` is ``tile`` or smaller when the
    area plus its context fits in less (a raster smaller than one tile still
    works: it becomes one padded tile). The first tile starts at ``-overlap``;
    the last one is shifted back to end at ``length + overlap`` so it does not
    compute far beyond the area.
    """
    if length < 1:
        raise ValueError("tiling an empty area")
    if overlap < 0 or tile < 1:
        raise ValueError(f"bad tile {tile} / overlap {overlap}")
    if 2 * overlap >= tile:
        raise ValueError(f"overlap {overlap} must be less than half the tile size {tile}")
    tile_len = min(tile, length + 2 * overlap)
    stride = tile_len - overlap
    origins = [-overlap]
    while origins[-1] + tile_len - overlap < length:
        origins.append(origins[-1] + stride)
    last_allowed = length + overlap - tile_len
    if origins[-1] > last_allowed:
        origins[-1] = max(last_allowed, -overlap)
    return origins, tile_len


def ramp_weights(tile_len: int, ramp: int) -> np.ndarray:
    """1-D raised-cosine weights: sin^2 rise over ``ramp`` samples, 1, then the mirror.

    ``sin^2`` and ``cos^2`` of the same phase add to one, so the falling ramp of a
    tile and the rising ramp of the next one (offset by ``tile_len - ramp``) form
    a partition of unity. The half-sample phase keeps every weight above zero.
    """
    w = np.ones(tile_len, dtype=np.float64)
    ramp = min(ramp, tile_len // 2)
    if ramp > 0:
        phase = (np.arange(ramp) + 0.5) / ramp
        rise = np.sin(0.5 * np.pi * phase) ** 2
        w[:ramp] = rise
        w[tile_len - ramp:] = rise[::-1]
    return w


@dataclass
class Axis:
    """Tiles along one axis, at input resolution, and the output weights at ``scale``."""

    length: int
    tile: int
    overlap: int
    origins: List[int] = field(init=False)
    tile_len: int = field(init=False)

    def __post_init__(self) -> None:
        self.origins, self.tile_len = tile_origins(self.length, self.tile, self.overlap)

    @property
    def start(self) -> int:
        """First input index any tile touches (negative: context before the area)."""
        return self.origins[0]

    @property
    def stop(self) -> int:
        """One past the last input index any tile touches."""
        return self.origins[-1] + self.tile_len

    def weights(self, scale: int) -> np.ndarray:
        """Per-tile weights at output resolution (``tile_len * scale`` samples)."""
        return ramp_weights(self.tile_len * scale, self.overlap * scale)

    def weight_sum(self, scale: int) -> np.ndarray:
        """Sum of all tiles' weights at each output sample of the area (length ``length*scale``)."""
        w = self.weights(scale)
        total = np.zeros((self.stop - self.start) * scale, dtype=np.float64)
        for o in self.origins:
            a = (o - self.start) * scale
            total[a:a + w.size] += w
        lo = -self.start * scale
        return total[lo:lo + self.length * scale]


class StripBlender:
    """Accumulates weighted tile outputs for one tile row and releases finished rows.

    Coordinates are input (LR) pixels relative to the area; the blender stores
    output at ``scale`` times that. ``channels`` output bands are blended alike.
    Usage per tile row: :meth:`start_row` (returns rows the new row can no
    longer touch), :meth:`add` for each tile, and after the last row
    :meth:`finish`. Released rows come as ``(row0, rows_array)`` in output pixels,
    already normalised by the weight sums, cropped to the area's width.
    """

    def __init__(self, rows: Axis, cols: Axis, scale: int, channels: int = 1) -> None:
        self.rows, self.cols, self.scale, self.channels = rows, cols, scale, channels
        self._wy = rows.weights(scale).astype(np.float32)
        self._wx = cols.weights(scale).astype(np.float32)
        self._w = self._wy[:, None] * self._wx[None, :]
        self._sum_y = rows.weight_sum(scale)
        sum_x = cols.weight_sum(scale)
        self._inv_sum_x = (1.0 / np.maximum(sum_x, 1e-12)).astype(np.float32)
        width = (cols.stop - cols.start) * scale
        self._buf = np.zeros((channels, rows.tile_len * scale, width), dtype=np.float32)
        self._buf_origin: int | None = None  # LR row of buffer row 0
        self._done = 0  # LR rows of the area already released

    def start_row(self, origin: int) -> List[Tuple[int, np.ndarray]]:
        """Begin the tile row at LR ``origin``; returns the rows finished before it."""
        if self._buf_origin is None:
            self._buf_origin = origin
            return []
        shift = origin - self._buf_origin
        if shift < 0 or shift > self.rows.tile_len:
            raise ValueError("tile rows must advance by at most one tile")
        released = self._release(origin)
        s = shift * self.scale
        if s:
            self._buf[:, :-s] = self._buf[:, s:]
            self._buf[:, -s:] = 0.0
        self._buf_origin = origin
        return released

    def add(self, col_origin: int, tile_out: np.ndarray) -> None:
        """Add one tile's output ``[channels, tile_len*scale, tile_len*scale]`` at LR column ``col_origin``."""
        t = tile_out.reshape(self.channels, tile_out.shape[-2], tile_out.shape[-1])
        x0 = (col_origin - self.cols.start) * self.scale
        self._buf[:, : t.shape[1], x0 : x0 + t.shape[2]] += t * self._w

    def finish(self) -> List[Tuple[int, np.ndarray]]:
        """Release every remaining row of the area."""
        return self._release(self.rows.length)

    def _release(self, upto_lr: int) -> List[Tuple[int, np.ndarray]]:
        assert self._buf_origin is not None
        lo = max(self._done, self._buf_origin, 0)
        hi = min(upto_lr, self.rows.length)
        if hi <= lo:
            return []
        s = self.scale
        b0 = (lo - self._buf_origin) * s
        b1 = (hi - self._buf_origin) * s
        x0 = -self.cols.start * s
        block = self._buf[:, b0:b1, x0 : x0 + self.cols.length * s]
        inv_y = (1.0 / np.maximum(self._sum_y[lo * s : hi * s], 1e-12)).astype(np.float32)
        out = block * inv_y[None, :, None]  # a new array: the caller may change it in place
        out *= self._inv_sum_x[None, None, :]
        self._done = hi
        return [(lo * s, out)]


# --------------------------------------------------------------------------- the tiled pass


@dataclass(frozen=True)
class OutputSpec:
    """One output of a tiled pass: its scale relative to the input and its number of channels."""

    scale: int
    channels: int


#: ``read_strip(row_origin) -> (x [..., rows, cols], valid [F, rows, cols])``
ReadStrip = Callable[[int], Tuple[np.ndarray, np.ndarray]]
#: ``predict(x_batch [B, ..., t, t], valid_batch [B, F, t, t]) -> [out [B, C, s*t, s*t] per spec]``
Predict = Callable[[np.ndarray, np.ndarray], Sequence[np.ndarray]]
#: ``emit(spec_index, out_row0, rows [C, n, W*s], lr_valid [n/s, W])``
Emit = Callable[[int, int, np.ndarray, np.ndarray], None]


def run_tiles(rows: Axis, cols: Axis, read_strip: ReadStrip, predict: Predict, specs: Sequence[OutputSpec],
              emit: Emit, batch: int, cancel: Optional[object] = None,
              report: Optional[Callable[[int, int], None]] = None) -> None:
    """Drive one tiled pass over an area, strip by strip.

    ``read_strip`` reads the input rows one tile row needs, with context (the
    strip spans ``cols.start .. cols.stop``); its last two axes are rows and
    columns, and ``valid``'s first axis counts frames. ``predict`` gets batches
    of tiles cut from the strip and returns one array per output spec; finished,
    blended rows reach ``emit`` in order, with the LR pixels where any frame was
    valid. Cancel is checked before every batch.
    """
    blenders = [StripBlender(rows, cols, s.scale, s.channels) for s in specs]
    total = len(rows.origins) * len(cols.origins)
    done = 0
    prev_valid: Optional[np.ndarray] = None
    prev_origin = 0
    c0 = -cols.start

    def release(blocks_per_spec: List[List[Tuple[int, np.ndarray]]]) -> None:
        for i, blocks in enumerate(blocks_per_spec):
            s = specs[i].scale
            for r0, block in blocks:
                lr0 = r0 // s - prev_origin
                emit(i, r0, block, prev_valid[lr0 : lr0 + block.shape[1] // s])

    # The next strip is read in a thread while the networks work on this one: reading (JP2/deflate
    # decoding in GDAL, which releases the GIL) then overlaps the computation. One strip ahead at most,
    # and one reader thread, so a dataset is never read from two threads at once.
    read_strip = in_this_env(read_strip)  # the reader thread reads under this thread's GDAL options
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tile-reader") as reader:
        ahead = reader.submit(read_strip, rows.origins[0])
        for k, oy in enumerate(rows.origins):
            release([b.start_row(oy) for b in blenders])
            check_cancel(cancel)
            x, valid = ahead.result()
            if k + 1 < len(rows.origins):
                ahead = reader.submit(read_strip, rows.origins[k + 1])
            prev_valid = valid.any(0)[:, c0 : c0 + cols.length]
            prev_origin = oy
            for b0 in range(0, len(cols.origins), batch):
                check_cancel(cancel)
                origins = cols.origins[b0 : b0 + batch]
                xs = np.stack([x[..., o - cols.start : o - cols.start + cols.tile_len] for o in origins])
                vs = np.stack([valid[..., o - cols.start : o - cols.start + cols.tile_len] for o in origins])
                outs = predict(xs, vs)
                for i, out in enumerate(outs):
                    for j, o in enumerate(origins):
                        blenders[i].add(o, out[j])
                done += len(origins)
                if report is not None:
                    report(done, total)
    release([b.finish() for b in blenders])


def read_padded_array(data: np.ndarray, valid: np.ndarray, row0: int, row1: int, col0: int,
                      col1: int) -> Tuple[np.ndarray, np.ndarray]:
    """Rows/cols ``[row0,row1) x [col0,col1)`` of an in-memory band, reflect-padded beyond its edges.

    The same rule as :meth:`core.io.rasters.Frame.read_padded` (context for
    edge tiles only), so a scene held in memory is tiled exactly like its
    GeoTIFF on disk.
    """
    h, w = data.shape[-2:]
    r0, r1 = max(0, row0), min(h, row1)
    c0, c1 = max(0, col0), min(w, col1)
    if r1 <= r0 or c1 <= c0:
        raise ValueError("strip outside the raster")
    d = np.where(valid[r0:r1, c0:c1], data[r0:r1, c0:c1], np.float32(0)).astype(np.float32)
    v = np.asarray(valid[r0:r1, c0:c1], dtype=bool)
    pads = ((r0 - row0, row1 - r1), (c0 - col0, col1 - c1))
    if any(p for pair in pads for p in pair):
        d = np.pad(d, pads, mode="reflect")
        v = np.pad(v, pads, mode="reflect")
    return d, v


@dataclass
class ArrayFrame:
    """One band of one date held in memory, read like a :class:`core.io.rasters.Frame` (reflectance + valid)."""

    data: np.ndarray  # [h, w] reflectance
    valid: np.ndarray  # [h, w] bool
    label: str = "array"

    def _sample(self) -> Tuple[np.ndarray, np.ndarray]:
        """Every k-th pixel, as :meth:`core.io.rasters.Frame.sample` reads a file to judge it."""
        h, w = self.data.shape
        k = max(1, int(math.ceil(max(h, w) / SAMPLE_SIDE)))
        return self.data[::k, ::k], np.asarray(self.valid, dtype=bool)[::k, ::k]

    @property
    def valid_fraction(self) -> float:
        _d, v = self._sample()
        return float(v.mean()) if v.size else 0.0

    @property
    def mean_reflectance(self) -> float:
        d, v = self._sample()
        return float(d[v].mean()) if v.any() else 0.0

    def read_padded(self, row0: int, row1: int, col0: int, col1: int) -> Tuple[np.ndarray, np.ndarray]:
        return read_padded_array(self.data, self.valid, row0, row1, col0, col1)


class ArraySink:
    """Collects emitted rows into one array ``[C, H, W]`` (the in-memory twin of a GeoTIFF sink)."""

    def __init__(self, channels: int, height: int, width: int, fill: float = 0.0, dtype=np.float32) -> None:
        self.array = np.full((channels, height, width), fill, dtype=dtype)
        self._next_row = 0

    def write_rows(self, row0: int, rows: np.ndarray) -> None:
        if row0 != self._next_row:
            raise ValueError(f"rows must come in order: expected row {self._next_row}, got {row0}")
        n = rows.shape[-2]
        self.array[:, row0 : row0 + n] = rows.reshape(self.array.shape[0], n, -1)
        self._next_row += n
