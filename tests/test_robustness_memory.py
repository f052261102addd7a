"""Case 4: judging a frame's clarity reads a bounded amount of memory, whatever the raster's width.

Reported: ``Frame.sample`` kept a strided *view* of every full-width strip it read, so each
strip stayed alive until the end; a sparse 200000 x 200000 raster reached 23 GB. Here a
sparse 1200 x 60000 raster (a few KB on disk) must be sampled within a few MB.
"""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from core.io.rasters import SAMPLE_SIDE, FrameSet

H, W = 1200, 60000


def _sparse_raster(path: Path) -> Path:
    """Mostly empty (SPARSE_OK: unwritten blocks cost nothing on disk) with a few known rows."""
    profile = dict(driver="GTiff", width=W, height=H, count=1, dtype="uint16", crs="EPSG:32634", nodata=0,
                   transform=from_origin(500_000.0, 6_000_000.0, 10.0, 10.0), tiled=True, blockxsize=512,
                   blockysize=512, compress="deflate", SPARSE_OK=True)
    with rasterio.open(path, "w", **profile) as ds:
        for row in (0, 235, 236, 700, 1199):
            ds.write(np.full((1, 1, 4096), 1000 + row, np.uint16), window=Window(1024, row, 4096, 1))
    return path


def test_sample_of_a_wide_raster_stays_small_and_matches_a_plain_read(tmp_path: Path) -> None:
    path = _sparse_raster(tmp_path / "wide.tif")
    k = math.ceil(max(H, W) / SAMPLE_SIDE)
    with FrameSet([path], band=1) as fs:
        frame = fs.frames[0]
        tracemalloc.start()
        try:
            data, valid = frame.sample(Window(0, 0, W, H))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # a strip of k full-width rows alone is k * W * 5 bytes (float32 + mask): 70 MB here
    assert peak < 16 * 2**20, f"sampling peaked at {peak / 2**20:.0f} MB"
    assert data.flags.c_contiguous and data.base is None
    with rasterio.open(path) as ds:
        expected = ds.read(1)[::k, ::k]
    assert data.shape == expected.shape == valid.shape
    np.testing.assert_array_equal(valid, expected != 0)
    np.testing.assert_array_equal(data[valid], expected[expected != 0].astype(np.float32))


def test_sample_of_a_small_raster_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "small.tif"
    rng = np.random.default_rng(0)
    arr = rng.integers(1, 5000, (700, 900)).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=900, height=700, count=1, dtype="uint16",
                       crs="EPSG:32634", transform=from_origin(0, 0, 10, 10)) as ds:
        ds.write(arr[None])
    k = math.ceil(900 / SAMPLE_SIDE)
    with FrameSet([path], band=1) as fs:
        data, valid = fs.frames[0].sample(Window(0, 0, 900, 700))
    np.testing.assert_array_equal(data, arr[::k, ::k].astype(np.float32))
    assert valid.all()
