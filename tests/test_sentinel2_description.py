"""The one description of Sentinel-2: every band name is read the same way everywhere, and B8A is never B08."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.data.degrade import sigma_for_bands
from core.io import qgis_style, s2_metadata, sentinel2
from core.io.sentinel2 import BANDS_10M, band_at_start, band_in_text, band_key, canonical_band


@pytest.mark.parametrize("text, band", [
    ("B8A", "B8A"), ("B08A", "B8A"), ("b8a_2023-05-01", "B8A"), ("SR x3 B8A", "B8A"),
    ("B8", "B08"), ("B08", "B08"), ("B08_2023-05-01", "B08"), ("T33UUU_20170216T102101_B02_10m", "B02"),
    ("B1", "B01"), ("B10", "B10"), ("B12", "B12"), ("Band 3: B04", "B04"), ("no band here", None),
    ("B13", None), ("AB08", None), ("B080", None),
])
def test_every_reader_reads_a_band_name_the_same_way(text, band):
    assert canonical_band(text) == band
    if band and not text.lower().startswith(("sr", "t33", "band")):
        assert band_at_start(text) == band


def test_b8a_is_never_b08_anywhere():
    assert band_key("B8A") == "B8A" and band_in_text("S2B_MSIL2A_..._B8A_20m.jp2") == "B8A"
    assert qgis_style.composite_bands(["B02", "B03", "B04", "B8A"], ("B08", "B04", "B03")) is None
    assert sentinel2.wavelength_of("B8A") == 865.0 != sentinel2.wavelength_of("B08")


def test_a_raster_with_b8a_is_not_super_resolved_as_b08():
    from core.inference.bands import band_of_frame

    frames = [SimpleNamespace(description=d, path=f"/x/{d}.tif") for d in ("B02", "B03", "B04", "B8A")]
    assert [band_of_frame(f) for f in frames] == ["B02", "B03", "B04", "B8A"]


def test_the_product_reader_and_the_simulator_use_the_description():
    assert s2_metadata.BANDS_10M is BANDS_10M == ("B02", "B03", "B04", "B08")
    assert s2_metadata.band_key is band_key
    assert sentinel2.band_file_suffix("B02", "L2A") == "_B02_10m" and sentinel2.band_file_suffix("B02", "L1C") == "_B02"
    # the simulator's PSF reads the MTF by any spelling of the band
    assert sigma_for_bands(["B8"]) == sigma_for_bands(["B08"]) == sigma_for_bands(["nir"])
    assert sigma_for_bands(["B02"]) != sigma_for_bands(["B08"])


def test_levels_say_where_their_scale_lives():
    assert sentinel2.LEVELS["L2A"].offset_tag == "BOA_ADD_OFFSET" and sentinel2.LEVELS["L2A"].has_scl
    assert sentinel2.LEVELS["L1C"].offset_tag == "RADIO_ADD_OFFSET" and not sentinel2.LEVELS["L1C"].has_scl
