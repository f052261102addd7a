"""``scripts/fit_l1c_l2a.py``: recovers a known L1C/L2A relation from GeoTIFFs, on the land the SCL marks.

Why: its table judges whether the training radiometry covers real products
(``docs/results/l1c_l2a.md``); a fit that read bands by the wrong number, kept
nodata or water, or biased the gain would misjudge it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin

from core.data.geotiff import write_geotiff

CRS = "EPSG:32632"
GAINS = (0.40, 0.65, 0.75, 0.85)
OFFSETS = (0.07, 0.045, 0.03, 0.02)


@pytest.fixture(scope="module")
def fit():
    return importlib.import_module("scripts.fit_l1c_l2a")


def _pair(tmp_path: Path):
    """12-band L1C and L2A files in ESA's band order (B02/B03/B04/B08 = bands 2/3/4/8), and a 20 m SCL."""
    rng = np.random.default_rng(3)
    h, w = 40, 24
    surface = rng.uniform(0.02, 0.45, (12, h, w))
    top = surface * 0.8 + 0.05  # bands the fit must not read
    for band, g, a in zip((1, 2, 3, 7), GAINS, OFFSETS):
        top[band] = g * surface[band] + a
    top[:, :20] = np.where(np.arange(12)[:, None, None] == 1, 0.9, top[:, :20])  # "water": B02 off the law
    scl = np.full((h // 2, w // 2), 4, np.uint8)
    scl[:10] = 6  # the top half is water: left out of the fit
    l1c, l2a, scl_path = tmp_path / "l1c.tif", tmp_path / "l2a.tif", tmp_path / "scl.tif"
    write_geotiff(l1c, np.round(top * 10000).astype(np.uint16), CRS, from_origin(580560, 5102120, 10, 10))
    write_geotiff(l2a, np.round(surface * 10000).astype(np.uint16), CRS, from_origin(580560, 5102120, 10, 10))
    write_geotiff(scl_path, scl, CRS, from_origin(580560, 5102120, 20, 20))
    return l1c, l2a, scl_path


def test_fit_recovers_gain_and_offset_on_land_pixels_only(fit, tmp_path):
    l1c, l2a, scl = _pair(tmp_path)
    fits = fit.fit_pair(l1c, l2a, scl, [2, 3, 4, 8], 0.0)
    assert [f.band for f in fits] == ["B02", "B03", "B04", "B08"]
    assert all(f.pixels == 20 * 24 for f in fits)  # the water half is out
    for f, g, a in zip(fits, GAINS, OFFSETS):
        assert f.gain == pytest.approx(g, abs=2e-3) and f.offset == pytest.approx(a, abs=1e-3)
    # without the classification, the bright "water" rows pull B02 off the law
    assert abs(fit.fit_pair(l1c, l2a, None, [2, 3, 4, 8], 0.0)[0].gain - GAINS[0]) > 0.05


def test_table_says_which_bands_lie_outside_the_training_jitter(fit, tmp_path, capsys):
    l1c, l2a, scl = _pair(tmp_path)
    assert fit.main(["--pair", str(l1c), str(l2a), "--scl", str(scl)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| l1c.tif")]
    assert len(rows) == 4
    assert rows[0].split("|")[8].strip() == "**no**"  # B02 gain 0.40: below the jitter's 0.43 (transmittance included)
    assert rows[3].split("|")[8].strip() == "yes"  # B08 gain 0.85: inside
