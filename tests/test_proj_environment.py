"""rasterio must share QGIS's PROJ: a reprojection works with PROJ_LIB / PROJ_DATA pointing at the system's.

Why: QGIS sessions often set these variables. A pip rasterio wheel bundles its own PROJ, which then
reads the system's proj.db of another version and fails ("DATABASE.LAYOUT.VERSION.MINOR ... proj.db");
Debian's python3-rasterio is linked against the same PROJ as QGIS. The check runs in a fresh
interpreter so the variables are read at import time, as they are inside QGIS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PROJ = Path("/usr/share/proj")

SCRIPT = r"""
import json, numpy as np, rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform
xs, ys = transform("EPSG:4326", "EPSG:32633", [15.0], [52.0])
src = np.arange(100, dtype=np.float32).reshape(10, 10)
src_t = from_origin(14.99, 52.01, 0.002, 0.002)
dst_t, w, h = calculate_default_transform("EPSG:4326", "EPSG:32633", 10, 10, 14.99, 51.99, 15.01, 52.01)
dst = np.zeros((h, w), np.float32)
reproject(src, dst, src_transform=src_t, src_crs="EPSG:4326", dst_transform=dst_t, dst_crs="EPSG:32633",
          resampling=Resampling.nearest)
print(json.dumps({"x": xs[0], "y": ys[0], "filled": float((dst > 0).mean()), "proj": rasterio.__gdal_version__}))
"""


@pytest.mark.skipif(not (SYSTEM_PROJ / "proj.db").is_file(),
                    reason="no system PROJ database at /usr/share/proj (not a Debian/QGIS machine)")
def test_reprojection_with_proj_variables_set_to_the_system_proj():
    env = {**os.environ, "PROJ_LIB": str(SYSTEM_PROJ), "PROJ_DATA": str(SYSTEM_PROJ), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "proj.db" not in proc.stderr, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # 15 E, 52 N is the central meridian of UTM 33N: easting 500 000 m, northing about 5.76e6 m
    assert abs(out["x"] - 500000.0) < 1.0 and 5.75e6 < out["y"] < 5.77e6
    assert out["filled"] > 0.5
