"""Input checks before work starts: each refusal and warning, as the analyst reads it."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from core.io.checks import (
    REVISIT_MIN_CORRELATION,
    Check,
    check_band_match,
    check_clouds,
    check_inputs,
    check_pixel_size,
    check_revisits,
    check_segmentation_input,
    enforce,
    frame_correlation,
)
from core.io.s2_product import FrameInfo
from core.jobs import InputError
from tests.s2_fixtures import ORIGIN, textured_scene, write_geotiff

N = 128


def info(band=None, date=None, wavelength=None, pixel=10.0, sr=False) -> FrameInfo:
    return FrameInfo(band=band, date=date, wavelength_nm=wavelength, is_sr_output=sr, pixel_size_m=pixel)


def farmland(seed: int = 0):
    """A vegetation fraction over parcels, and its blue, red and NIR reflectance (vegetation: dark blue, bright NIR)."""
    rng = np.random.default_rng(seed)
    v = textured_scene(N, seed=seed + 1)
    v = (v - v.min()) / (v.max() - v.min())
    v = 0.6 * np.kron(rng.random((N // 16, N // 16)), np.ones((16, 16))) + 0.4 * v
    noise = lambda: rng.normal(0, 0.005, v.shape)  # noqa: E731
    return v, 0.09 - 0.06 * v + noise(), 0.12 - 0.09 * v + noise(), 0.12 + 0.35 * v + noise()


def revisit(v: np.ndarray, seed: int, changed: float = 0.2) -> np.ndarray:
    """NIR of another date: some parcels changed (harvest), another gain, haze, noise."""
    rng = np.random.default_rng(seed)
    flip = np.kron(rng.random((N // 16, N // 16)) < changed, np.ones((16, 16), dtype=bool))
    v2 = np.where(flip, 1.0 - v, v)
    return 0.8 * (0.12 + 0.35 * v2) + 0.04 * textured_scene(N, seed=seed + 50) + rng.normal(0, 0.005, v.shape)


def as_dn(refl: np.ndarray) -> np.ndarray:
    return np.clip(np.round(refl * 10000), 1, 65535).astype(np.uint16)


# --------------------------------------------------------------------------- band


def test_band_mismatch_warns_a_single_image_model_and_refuses_a_multi_image_one():
    c = check_band_match([info("B04")], ["B8"], multi_image=False, labels=["red.tif"])
    assert c.level == "warning" and c.code == "band_mismatch"
    assert c.message == ("red.tif is B04 (red, 665 nm) but the model was trained on B08 (near infrared, 842 nm); "
                         "its output will not be reliable.")
    c = check_band_match([info("B08"), info("B02")], ["B8"], multi_image=True, labels=["may.tif", "june.tif"])
    assert c.level == "refusal" and c.message.startswith("june.tif is B02 (blue, 490 nm)")
    assert "refused unless forced" in c.message


def test_band_matches_by_name_or_wavelength_and_unknown_is_assumed():
    assert check_band_match([info("B08")], ["B8"], multi_image=True).level == "ok"
    assert check_band_match([info(None, wavelength=833.0)], ["B08"], multi_image=True).level == "ok"
    far = check_band_match([info(None, wavelength=665.0)], ["B08"], multi_image=True)
    assert far.level == "refusal" and "an unnamed band at 665 nm" in far.message
    c = check_band_match([info(None)], ["B8"], multi_image=True)
    assert (c.level, c.code) == ("ok", "band_unknown") and "taken to be B08" in c.message
    four = ["B02", "B03", "B04", "B08"]
    assert check_band_match([info(b) for b in four], four, multi_image=False).level == "ok"
    swapped = check_band_match([info(b) for b in ("B04", "B03", "B02", "B08")], four, multi_image=False)
    assert swapped.level == "warning" and "is B04 (red" in swapped.message and "trained on B02" in swapped.message
    short = check_band_match([info("B08")], four, multi_image=True)
    assert short.level == "refusal" and "takes 4 bands (B02, B03, B04, B08) but the input gives 1" in short.message


# --------------------------------------------------------------------------- pixel size


def test_pixel_size_refusals():
    assert check_pixel_size(10.0, "a.tif").level == "ok"
    assert check_pixel_size(10.9, "reprojected.tif").level == "ok"  # a 10 m band on another grid
    sr = check_pixel_size(10 / 3, "sr.tif")
    assert sr.level == "refusal"
    assert "this looks like a super-resolved output (3.33 m)" in sr.message
    assert check_pixel_size(10.0, "tagged.tif", is_sr_output=True).level == "refusal"
    c = check_pixel_size(20.0, "b8a.tif")
    assert c.level == "refusal" and c.message.startswith("b8a.tif has 20 m pixels: a 20 m or 60 m band")
    c = check_pixel_size(30.0, "landsat.tif")
    assert c.level == "refusal" and "30.00 m pixels, not Sentinel-2's 10 m" in c.message
    assert check_pixel_size(None, "nocrs.tif").level == "warning"


def test_pixel_size_is_measured_on_the_ground_for_files(tmp_path):
    lat = 48.0
    deg = write_geotiff(tmp_path / "nir_2023-05-12_B08.tif", as_dn(farmland()[3]), crs="EPSG:4326",
                        transform=Affine(10 / (111320 * np.cos(np.radians(lat))), 0, 21.0, 0, -10 / 111200, lat))
    checks = check_inputs([deg], band=1, card_bands=["B8"])
    assert [c.level for c in checks] == ["ok", "ok", "ok", "ok"], checks  # the last: its level is not recorded
    coarse = write_geotiff(tmp_path / "coarse_B08.tif", as_dn(farmland()[3]),
                           transform=Affine(20, 0, ORIGIN[0], 0, -20, ORIGIN[1]))
    with pytest.raises(InputError, match="coarse_B08.tif has 20 m pixels"):
        enforce(check_inputs([coarse], band=1, card_bands=["B8"]))


# --------------------------------------------------------------------------- bands as revisits


def test_different_band_names_are_not_revisits():
    c = check_revisits([info("B02", "2023-05-12"), info("B08", "2023-05-17")], ["a", "b"])
    assert c.level == "refusal" and c.code == "bands_as_revisits"
    assert c.message.startswith("The revisits are different bands (B02, B08), not dates of one band")


def test_bands_of_one_file_and_one_date_are_not_revisits(tmp_path):
    _, blue, red, nir = farmland()
    path = write_geotiff(tmp_path / "export_2023-05-12.tif", as_dn(np.stack([blue, red, nir, nir])))
    checks = check_inputs([path], band="all", card_bands=["B8"], multi_image=True)
    c = next(c for c in checks if c.code == "bands_as_revisits")
    assert c.level == "refusal"
    assert c.message == ("4 frames of export_2023-05-12.tif all date from 2023-05-12: they are bands of one "
                         "acquisition, not revisits; give several dates of one band.")


def test_blue_against_nir_over_vegetation_is_refused_by_its_pixels(tmp_path):
    _, blue, _, nir = farmland()
    a = write_geotiff(tmp_path / "scene_a.tif", as_dn(nir))
    b = write_geotiff(tmp_path / "scene_b.tif", as_dn(blue))
    checks = check_inputs([a, b], band=1, card_bands=["B8"], multi_image=True)
    c = next(c for c in checks if c.code == "bands_as_revisits")
    assert c.level == "refusal"
    assert c.message.startswith("scene_b.tif does not look like a revisit of scene_a.tif: their clear pixels "
                                "correlate at r = -0.")
    with pytest.raises(InputError, match="does not look like a revisit"):
        enforce(checks)
    assert enforce(checks, force=True) == checks


def test_real_looking_revisits_pass_despite_clouds_haze_and_gain(tmp_path):
    v, _, _, nir = farmland()
    paths = [write_geotiff(tmp_path / "nir_2023-05-02_B08.tif", as_dn(nir))]
    for i, day in enumerate(("2023-05-12", "2023-05-22"), start=1):
        dn = as_dn(revisit(v, seed=i))
        dn[: 30 * i, :] = 0  # cloud masked as nodata
        paths.append(write_geotiff(tmp_path / f"nir_{day}_B08.tif", dn))
    checks = check_inputs(paths, band=1, card_bands=["B8"], multi_image=True)
    assert all(c.level == "ok" for c in checks), checks
    for seed in (1, 2, 3):
        a, b = nir, revisit(v, seed=seed)
        ones = np.ones(a.shape, dtype=bool)
        assert frame_correlation(a, ones, b, ones) > REVISIT_MIN_CORRELATION + 0.2


def test_same_date_twice_is_a_warning():
    c = check_revisits([info("B08", "2023-05-12"), info("B08", "2023-05-12")], ["a.tif", "b.tif"],
                       ["a.tif", "b.tif"])
    assert c.level == "warning" and "share a date" in c.message


# --------------------------------------------------------------------------- segmentation and clouds


def test_segmenting_a_10m_raster_warns():
    c = check_segmentation_input(10.0, "s2.tif")
    assert c.level == "warning" and c.code == "segment_10m"
    assert c.message.startswith("s2.tif has 10.0 m pixels, but the building and road networks were trained on "
                                "3.33 m (super-resolved) images")
    assert check_segmentation_input(10 / 3, "sr.tif").level == "ok"
    assert check_segmentation_input(10.0, "sr.tif", is_sr_output=True).level == "ok"


def test_segment_task_on_files(tmp_path):
    path = write_geotiff(tmp_path / "nir_B08.tif", as_dn(farmland()[3]))
    checks = check_inputs([path], task="segment")
    assert [c.code for c in checks] == ["segment_10m", "clouds", "level_unknown"]


def test_clouds_counts_mostly_cloudy_frames(tmp_path):
    c = check_clouds([0.95, 0.3, 0.8, 0.1, 0.6], ["d1", "d2", "d3", "d4", "d5"])
    assert c.level == "warning"
    assert c.message.startswith("2 of the 5 frame(s) are mostly cloud or nodata (more than half their pixels): "
                                "d2 (30 % clear), d4 (10 % clear)")
    assert check_clouds([0.9, 0.7], ["a", "b"]).level == "ok"
    _, _, _, nir = farmland()
    cloudy = as_dn(nir)
    cloudy[:100] = 0
    p1 = write_geotiff(tmp_path / "nir_2023-05-02_B08.tif", as_dn(nir))
    p2 = write_geotiff(tmp_path / "nir_2023-05-07_B08.tif", cloudy)
    checks = check_inputs([p1, p2], band=1, card_bands=["B8"], multi_image=True)
    assert next(c for c in checks if c.code == "clouds").message.startswith("1 of the 2 frame(s) are mostly cloud")


def test_check_levels_are_closed():
    with pytest.raises(ValueError):
        Check("fatal", "x", "y")
    assert str(Check("warning", "x", "Say it.")) == "warning: Say it."


def test_messages_are_one_sentence_each():
    for c in (check_pixel_size(20.0, "a.tif"), check_segmentation_input(10.0, "a.tif"),
              check_band_match([info("B04")], ["B8"], False), check_clouds([0.1], ["a"])):
        assert c.message.endswith(".") and "\n" not in c.message


def test_a_stack_of_dates_passes_as_revisits(tmp_path):
    v, _, _, nir = farmland()
    dates = ["2023-05-02", "2023-05-12", "2023-05-22"]
    data = np.stack([as_dn(nir)] + [as_dn(revisit(v, seed=i)) for i in (1, 2)])
    path = write_geotiff(tmp_path / "stack.tif", data, descriptions=[f"B08_{d}" for d in dates])
    checks = check_inputs([path], band="B08", card_bands=["B8"], multi_image=True)
    assert [c.level for c in checks] == ["ok", "ok", "ok", "ok", "ok"], checks  # the last: its level
