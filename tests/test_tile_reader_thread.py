"""The tiler reads the next strip in a thread: under the caller's GDAL options, with errors passed on."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import rasterio
import rasterio.env

from core.inference.runner import Axis, OutputSpec, run_tiles
from core.io.rasters import in_this_env


def test_a_helper_thread_reads_under_the_callers_gdal_options():
    seen = {}

    def probe():
        seen["options"] = dict(rasterio.env.getenv()) if rasterio.env.hasenv() else {}

    with rasterio.Env(GDAL_CACHEMAX=48, CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".none"):
        t = threading.Thread(target=in_this_env(probe))
        t.start()
        t.join()
    assert seen["options"].get("GDAL_CACHEMAX") == 48
    assert seen["options"].get("CPL_VSIL_CURL_ALLOWED_EXTENSIONS") == ".none"


def _identity_pass(read_strip, length=40, tile=16, overlap=4):
    rows, cols = Axis(length, tile, overlap), Axis(length, tile, overlap)
    out = np.zeros((1, length, length), np.float32)

    def predict(xb, vb):
        return [xb[:, :1]]

    def emit(_i, r0, block, _valid):
        out[:, r0:r0 + block.shape[1]] = block

    run_tiles(rows, cols, read_strip, predict, [OutputSpec(1, 1)], emit, batch=2)
    return rows, cols, out


def test_strips_are_read_in_order_in_one_thread_and_the_output_is_exact():
    image = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    calls, threads = [], set()

    def read_strip(oy):
        calls.append(oy)
        threads.add(threading.current_thread().name)
        rows = np.arange(oy, oy + 16)
        cols = np.arange(-4, 44)
        r, c = np.clip(rows, 0, 39), np.clip(cols, 0, 39)
        x = image[np.ix_(r, c)][None]
        return x, np.ones((1,) + x.shape[1:], bool)

    rows, _cols, out = _identity_pass(read_strip)
    assert calls == rows.origins
    assert len(threads) == 1 and threading.current_thread().name not in threads
    assert np.allclose(out[0], image, atol=1e-5)


def test_a_failing_read_stops_the_pass_with_its_own_error():
    def read_strip(oy):
        if oy > 0:
            raise OSError("disk gone")
        return np.zeros((1, 16, 48), np.float32), np.ones((1, 16, 48), bool)

    with pytest.raises(OSError, match="disk gone"):
        _identity_pass(read_strip)
