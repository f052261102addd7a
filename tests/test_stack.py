"""Revisit stacks from real products and rasters: clearest dates kept with reasons, known sub-pixel shifts found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from core.io.geo import compose
from core.io.rasters import FrameSet, resolve_bands
from core.io.stack import build_stack, measure_shift
from core.jobs import Cancelled, CancelToken, InputError
from core.options import StackOptions
from tests.s2_fixtures import (
    BANDS_10M,
    ORIGIN,
    fourier_shift,
    make_safe,
    textured_scene,
    to_dn,
    write_geotiff,
    zip_safe,
)

SIZE = 96
#: date -> (dy, dx) of the scene content, in 10 m pixels; the first date is the clearest.
SHIFTS = {
    "2023-05-02": (0.0, 0.0),
    "2023-05-07": (0.3, -0.25),
    "2023-05-12": (-0.4, 0.15),
    "2023-05-17": (0.2, 0.45),
    "2023-05-22": (-0.15, -0.35),
}
#: Share of each date's rows under cloud (SCL 9); two dates are mostly cloudy.
CLOUD_ROWS = {"2023-05-02": 0.0, "2023-05-07": 0.75, "2023-05-12": 0.1, "2023-05-17": 0.97, "2023-05-22": 0.2}


def scene(band_index: int) -> np.ndarray:
    return textured_scene(2 * SIZE, seed=10 + band_index) * (1.0 + 0.15 * band_index)


def dated_bands(dy: float, dx: float) -> dict:
    """The four bands of one date: the scene moved by (dy, dx), cut to SIZE, as L2A DN (offset -1000)."""
    return {b: to_dn(fourier_shift(scene(i), dy, dx)[30:30 + SIZE, 40:40 + SIZE]) for i, b in enumerate(BANDS_10M)}


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> list:
    root = tmp_path_factory.mktemp("products")
    paths = []
    for date, (dy, dx) in SHIFTS.items():
        scl = np.full((SIZE // 2, SIZE // 2), 4, dtype=np.uint8)
        scl[: int(round(CLOUD_ROWS[date] * SIZE / 2)), :] = 9
        if date == "2023-05-02":
            scl[30:34, 10:16] = 3  # a cloud shadow on the clearest date
        paths.append(make_safe(root, date=date, bands=dated_bands(dy, dx), scl=scl, size=SIZE))
    paths[1] = zip_safe(paths[1])  # one date as the zip the Data Space delivers
    return paths


@pytest.fixture(scope="module")
def stacked(products, tmp_path_factory):
    out = tmp_path_factory.mktemp("stack") / "town.tif"
    return build_stack(products, out, StackOptions(frames=3, min_clear=0.05))


def test_keeps_the_clearest_dates_and_says_why(stacked):
    assert stacked.dates == ["2023-05-02", "2023-05-12", "2023-05-22"]
    assert stacked.reference_date == "2023-05-02"
    reasons = dict(stacked.dropped)
    assert set(reasons) == {"2023-05-07", "2023-05-17"}
    assert "not among the 3 clearest" in reasons["2023-05-07"] and "25.0 % clear" in reasons["2023-05-07"]
    assert reasons["2023-05-17"].startswith("only 2.1 % clear") and "least is 5 %" in reasons["2023-05-17"]
    assert stacked.clear["2023-05-12"] == pytest.approx(0.9, abs=0.01)
    text = "\n".join(stacked.messages)
    assert "kept 2023-05-02 (" in text and "dropped 2023-05-17: only 2.1 % clear" in text


def test_records_known_subpixel_shifts(stacked):
    for date in stacked.dates:
        dy, dx = SHIFTS[date]
        got = stacked.shifts[date]
        assert got is not None
        assert got[0] == pytest.approx(dx, abs=0.1) and got[1] == pytest.approx(dy, abs=0.1), date


def test_output_is_band_major_dated_and_tagged(stacked, products):
    with rasterio.open(stacked.path) as ds:
        assert ds.count == 12
        assert ds.descriptions[:3] == ("B02_2023-05-02", "B02_2023-05-12", "B02_2023-05-22")
        assert ds.descriptions[-1] == "B08_2023-05-22"
        assert resolve_bands(ds, stacked.path, "B08") == [10, 11, 12]
        assert ds.dtypes[0] == "uint16" and ds.nodata == 0
        assert ds.scales[0] == pytest.approx(1e-4) and ds.offsets[0] == pytest.approx(-0.1)
        tags = ds.tags()
        nir_may12 = ds.read(11)
        shadow = ds.read(10)[60:68, 20:32]
    assert json.loads(tags["STACK_DATES"]) == stacked.dates
    assert json.loads(tags["STACK_BANDS"]) == list(BANDS_10M)
    shifts = json.loads(tags["STACK_SHIFTS"])
    assert shifts["2023-05-12"]["dx"] == pytest.approx(0.15, abs=0.1)
    assert set(json.loads(tags["STACK_CLEAR"])) == set(SHIFTS)
    assert "not among the 3 clearest" in json.loads(tags["STACK_REASONS"])["2023-05-07"]
    # Pixels are copied, not resampled: May 12's NIR equals its product's DN where clear.
    with rasterio.open(next(products[2].rglob("*_B08_10m.jp2"))) as src:
        original = src.read(1)
    clear = nir_may12 != 0
    assert clear.mean() == pytest.approx(0.9, abs=0.01)
    assert np.array_equal(nir_may12[clear], original[clear])
    assert (shadow == 0).all()  # the SCL shadow (class 3) of the reference date


def test_the_readers_see_reflectance_of_every_date(stacked):
    with FrameSet([stacked.path], band="B08") as fs:
        assert len(fs.frames) == 3
        fs.inspect(Window(0, 0, fs.grid.width, fs.grid.height))
        data, valid = fs.frames[0].read_padded(0, SIZE, 0, SIZE)
    expected = fourier_shift(scene(3), 0, 0)[30:30 + SIZE, 40:40 + SIZE]
    assert np.abs(data[valid] - expected[valid]).max() < 1e-4


def test_extent_crops_the_stack(products, tmp_path):
    x0, y0 = ORIGIN[0] + 200, ORIGIN[1] - 300
    result = build_stack(products, tmp_path / "crop.tif",
                         StackOptions(frames=2, bands=("B08",), extent=(x0, y0 - 400, x0 + 500, y0)))
    with rasterio.open(result.path) as ds:
        assert (ds.width, ds.height, ds.count) == (50, 40, 2)
        assert ds.transform.c == x0 and ds.transform.f == y0
        # Inside this window May 12 and 22 are cloud-free while May 2 has its shadow: the ranking is local.
        assert set(ds.descriptions) == {"B08_2023-05-12", "B08_2023-05-22"}


def nir_export(folder: Path, date: str, dy: float, dx: float, transform: Affine = None, cloud: slice = None,
               offset_dn: int = 0) -> Path:
    """A single-band NIR GeoTIFF as EO Browser names it (values harmonized: no offset)."""
    dn = to_dn(fourier_shift(scene(3), dy, dx)[30:30 + SIZE, 40:40 + SIZE], offset_dn)
    if cloud is not None:
        dn[cloud] = 0
    name = f"{date}-00_00_{date}-23_59_Sentinel-2_L2A_B08_(Raw).tiff"
    return write_geotiff(folder / name, dn, transform=transform)


def test_rasters_of_several_dates_stack_with_their_baseline_rule(tmp_path):
    inputs = [nir_export(tmp_path, "2023-06-01", 0, 0),
              nir_export(tmp_path, "2023-06-06", 0.25, -0.3, cloud=np.s_[0:20, :]),
              nir_export(tmp_path, "2023-06-11", -0.2, 0.1)]
    result = build_stack(inputs, tmp_path / "nir.tif", StackOptions(bands=("B08",)))
    assert result.dates == ["2023-06-01", "2023-06-11", "2023-06-06"]
    assert result.shifts["2023-06-06"][0] == pytest.approx(-0.3, abs=0.1)
    assert result.shifts["2023-06-06"][1] == pytest.approx(0.25, abs=0.1)
    assert any("Sentinel Hub export" in m for m in result.messages)
    with FrameSet([result.path], band="B08") as fs:
        fs.inspect(Window(0, 0, SIZE, SIZE))
        data, valid = fs.frames[0].read_padded(0, SIZE, 0, SIZE)
    expected = fourier_shift(scene(3), 0, 0)[30:30 + SIZE, 40:40 + SIZE]
    assert np.abs(data[valid] - expected[valid]).max() < 1e-4  # harmonized DN / 10000, no offset


def test_whole_pixel_offsets_are_copied_and_other_grids_warped(tmp_path):
    base = Affine(10.0, 0.0, ORIGIN[0], 0.0, -10.0, ORIGIN[1])
    first = nir_export(tmp_path, "2023-07-01", 0, 0)
    whole = nir_export(tmp_path, "2023-07-06", 0, 0, transform=compose(base, Affine.translation(3, -2)))
    half = nir_export(tmp_path, "2023-07-11", 0, 0, transform=compose(base, Affine.translation(0.5, 0)))
    result = build_stack([first, whole, half], tmp_path / "grids.tif", StackOptions(bands=("B08",)))
    resampled = [m for m in result.messages if "resampled onto the grid" in m]
    assert len(resampled) == 1 and resampled[0].startswith("2023-07-11")  # the whole-pixel offset is a copy
    with rasterio.open(result.path) as ds, rasterio.open(whole) as src:
        order = [d.split("_", 1)[1] for d in ds.descriptions]
        moved = ds.read(order.index("2023-07-06") + 1)
        # Output pixel (r, c) is the moved file's (r + 2, c - 3).
        assert np.array_equal(moved[10:50, 10:50], src.read(1)[12:52, 7:47])
    # The same content placed 3 columns right and 2 rows up: a large shift, measured and flagged.
    assert result.shifts["2023-07-06"] == (pytest.approx(3, abs=0.1), pytest.approx(-2, abs=0.1))
    assert any(m.startswith("2023-07-06: shifted by +3.00, -2.00 px") for m in result.messages)


def test_dates_of_two_baselines_share_one_radiometry(tmp_path):
    old = make_safe(tmp_path, date="2021-12-30", baseline="03.01", offset_dn=None, size=SIZE,
                    bands={b: to_dn(scene(i)[:SIZE, :SIZE], 0) for i, b in enumerate(BANDS_10M)})
    new = make_safe(tmp_path, date="2022-02-03", size=SIZE,
                    bands={b: to_dn(scene(i)[:SIZE, :SIZE], -1000) for i, b in enumerate(BANDS_10M)})
    result = build_stack([old, new], tmp_path / "two.tif", StackOptions(bands=("B04",)))
    assert any("2021-12-30: values converted" in m for m in result.messages)
    with rasterio.open(result.path) as ds:
        assert ds.offsets == (-0.1, -0.1)
        a, b = ds.read(1).astype(int), ds.read(2).astype(int)
    assert np.array_equal(a, b)  # same reflectance, same DN once the old date gained +1000


def test_inputs_that_cannot_stack_are_refused_in_one_sentence(products, tmp_path):
    undated = write_geotiff(tmp_path / "nir_B08.tif", np.full((SIZE, SIZE), 1500, np.uint16))
    with pytest.raises(InputError, match="cannot tell the acquisition date"):
        build_stack([undated], tmp_path / "x.tif", StackOptions(bands=("B08",)))
    with pytest.raises(InputError, match="no date is at least 99 % clear"):
        build_stack(products, tmp_path / "x.tif", StackOptions(min_clear=0.99))
    with pytest.raises(InputError, match="not one of the 10 m bands"):
        build_stack(products, tmp_path / "x.tif", StackOptions(bands=("B11",)))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        build_stack(products, tmp_path / "x.tif", cancel=token)
    assert not any(tmp_path.glob("*x.tif*"))


def test_measure_shift_ignores_clouds_and_gain():
    img = textured_scene(160, seed=4)
    moved = 0.7 * fourier_shift(img, -0.35, 0.6) + 0.05
    valid = np.ones(img.shape, dtype=bool)
    valid[20:70, 30:110] = False  # a cloud on the moved date
    dx, dy, peak = measure_shift(img[16:144, 16:144], moved[16:144, 16:144], None, valid[16:144, 16:144])
    assert (dx, dy) == (pytest.approx(0.6, abs=0.05), pytest.approx(-0.35, abs=0.05))
    assert peak > 0.5
    assert measure_shift(img, np.full(img.shape, 0.2)) is None  # nothing to correlate


def test_our_own_exports_stack_like_products(products, tmp_path):
    from core.io.s2_product import export_product

    exports = [export_product(products[i], tmp_path / f"export_{i}.tif") for i in (0, 2)]
    result = build_stack(exports, tmp_path / "from_exports.tif", StackOptions(bands=("B04", "B08")))
    assert result.dates == ["2023-05-02", "2023-05-12"]
    assert result.shifts["2023-05-12"] == (pytest.approx(0.15, abs=0.1), pytest.approx(-0.4, abs=0.1))
    with rasterio.open(result.path) as ds, rasterio.open(exports[1]) as src:
        assert ds.descriptions == ("B04_2023-05-02", "B04_2023-05-12", "B08_2023-05-02", "B08_2023-05-12")
        assert np.array_equal(ds.read(4), src.read(4))  # DN copied through


def test_resampled_dn_are_rounded_not_truncated():
    from core.io.radiometry import Radiometry
    from core.io.s2_product import harmonize_dn

    rad = Radiometry(1e-4, -0.1)
    values = np.array([1499.6, 1500.4, 0.2, 70000.0])
    valid = np.array([True, True, True, False])
    assert harmonize_dn(values, valid, rad, rad).tolist() == [1500, 1500, 1, 0]
    assert harmonize_dn(values, valid, Radiometry(1e-4, 0.0), rad).tolist() == [2500, 2500, 1000, 0]


def test_cli_stack_and_export(products, tmp_path, capsys):
    from core.cli.main import main

    out = tmp_path / "cli_stack.tif"
    assert main(["stack", *map(str, products[:3]), "--out", str(out), "--frames", "2", "--bands", "B08"]) == 0
    printed = capsys.readouterr().out
    assert "kept 2023-05-02 (" in printed and "dropped 2023-05-07:" in printed and "1 band(s) x 2 date(s)" in printed
    with rasterio.open(out) as ds:
        assert ds.descriptions == ("B08_2023-05-02", "B08_2023-05-12")
    assert main(["export", str(products[1]), "--out", str(tmp_path / "one.tif"), "--bands", "B04", "B08"]) == 0
    assert "SCL classes masked as nodata" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "missing.zip"), "--out", str(tmp_path / "x.tif")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'missing.zip'}: file or folder not found"]
