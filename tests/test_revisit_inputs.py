"""Issue 21, defects 6 and 8: every ticked input is checked, SR outputs are refused as revisits, clouds count revisits.

Only the first input's pixel size used to be checked, so "t00 SR x3" ticked
among t00...t08 passed with an orange warning and was fused as a revisit; and a
4-band model's check line counted nine revisits of four bands as "36 frame(s)".
"""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from core.io.checks import check_inputs, enforce
from core.jobs import InputError
from tests.s2_fixtures import ORIGIN, textured_scene, write_geotiff

N = 96
BANDS = ("B02", "B03", "B04", "B08")


def _nir(seed: int) -> np.ndarray:
    base = textured_scene(N, seed=1)
    rng = np.random.default_rng(seed)
    return np.clip(np.round((0.12 + 0.3 * base + rng.normal(0, 0.004, base.shape)) * 10000), 1, 65535).astype("uint16")


def _revisits(folder, n=3):
    return [write_geotiff(folder / f"t{i:02d}_2023-05-{2 + 5 * i:02d}_B08.tif", _nir(i)) for i in range(n)]


def _sr_output(folder, tags=True, name="t00 SR x3.tif"):
    """A 3.33 m output of this tool (its metadata), or one whose metadata was lost (pixels only)."""
    up = np.kron(_nir(0), np.ones((3, 3), dtype="uint16"))
    return write_geotiff(folder / name, up, transform=Affine(10 / 3, 0, ORIGIN[0], 0, -10 / 3, ORIGIN[1]),
                         tags={"SR_SCALE": "3", "SR_MODEL": "rams"} if tags else None)


@pytest.mark.parametrize("tags", [True, False], ids=["scale metadata", "3.33 m pixels only"])
@pytest.mark.parametrize("where", [1, -1], ids=["second", "last"])
def test_an_sr_output_among_the_revisits_is_refused(tmp_path, tags, where):
    paths = _revisits(tmp_path)
    paths.insert(where if where > 0 else len(paths), _sr_output(tmp_path, tags))
    checks = check_inputs(paths, band=1, card_bands=["B8"], multi_image=True)
    refused = [c for c in checks if c.code == "sr_output"]
    assert refused and refused[0].level == "refusal", checks
    assert refused[0].message.startswith("t00 SR x3.tif is a super-resolved output")
    assert "untick it" in refused[0].message
    with pytest.raises(InputError, match="t00 SR x3.tif is a super-resolved output"):
        enforce(checks)


def test_ten_metre_revisits_alone_pass(tmp_path):
    checks = check_inputs(_revisits(tmp_path), band=1, card_bands=["B8"], multi_image=True)
    assert all(c.level == "ok" for c in checks), checks


def test_a_four_band_model_counts_revisits_not_bands(tmp_path):
    paths = []
    for i in range(9):
        data = np.stack([_nir(10 * i + k) for k in range(4)])
        if i == 4:
            data[:, : N * 3 // 4] = 0  # mostly cloud, masked as nodata
        paths.append(write_geotiff(tmp_path / f"t{i:02d}.tif", data, descriptions=BANDS))
    checks = check_inputs(paths, band="all", card_bands=list(BANDS), multi_image=True)
    clouds = next(c for c in checks if c.code == "clouds")
    assert clouds.message.startswith("1 of the 9 revisit(s) are mostly cloud"), clouds.message
    assert "t04.tif" in clouds.message and "36" not in clouds.message
