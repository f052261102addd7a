"""``core.io.rasters.gdal_env``: the jobs' GDAL block cache is the 128 MB it is meant to be, not 128 bytes.

rasterio hands an integer ``GDAL_CACHEMAX`` to ``GDALSetCacheMax64``, which counts bytes; given as 128 it
left every job with a 128-byte cache (a decimated read of a 2304 px output took 20 s instead of 0.08 s).
GDAL's own getter tells what GDAL was given.
"""

from __future__ import annotations

import pytest

from core.io.rasters import GDAL_CACHE_MB, gdal_env

gdal = pytest.importorskip("osgeo.gdal", reason="GDAL's Python bindings (python3-gdal) read the cache size back")


def test_job_environment_sets_a_block_cache_of_128_megabytes():
    with gdal_env():
        assert gdal.GetCacheMax() == GDAL_CACHE_MB * 1024 * 1024
