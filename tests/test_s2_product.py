"""Sentinel-2 products in: real .SAFE folders and zips with JP2 bands -> reflectance, clouds, tags, clear errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from core.io.rasters import FrameSet
from core.io.s2_product import (
    band_key,
    baseline_rule,
    export_product,
    frame_info,
    ground_pixel_size,
    open_product,
)
from core.jobs import Cancelled, CancelToken, InputError, OutputError
from tests.s2_fixtures import BANDS_10M, make_safe, write_geotiff, write_jp2, zip_safe

SIZE = 60


def known_bands(seed: int = 0) -> dict:
    """DN per band with a few pixels of known value (and one DN 0 = nodata)."""
    rng = np.random.default_rng(seed)
    bands = {}
    for i, b in enumerate(BANDS_10M):
        dn = rng.integers(1100, 4000, size=(SIZE, SIZE)).astype(np.uint16)
        dn[30, 40] = 3452 + i
        dn[45, 12] = 0
        bands[b] = dn
    return bands


@pytest.fixture(scope="module")
def l2a(tmp_path_factory) -> Path:
    scl = np.full((SIZE // 2, SIZE // 2), 4, dtype=np.uint8)
    scl[0:5, 0:5] = 9  # cloud (high probability): rows/cols 0-9 at 10 m
    scl[10, 10] = 3  # cloud shadow: rows/cols 20-21
    scl[25, 25] = 2  # dark area: not masked by default
    return make_safe(tmp_path_factory.mktemp("l2a"), bands=known_bands(), scl=scl, size=SIZE)


def read_band(path: Path, band: str, row: int, col: int) -> float:
    """Reflectance of one pixel as the engine's reader sees it (None when nodata)."""
    with FrameSet([path], band=band) as fs:
        fs.inspect(Window(0, 0, fs.grid.width, fs.grid.height))
        data, valid = fs.frames[0].read_padded(row, row + 1, col, col + 1)
    return float(data[0, 0]) if valid[0, 0] else None


def test_l2a_metadata_is_read(l2a):
    p = open_product(l2a)
    assert (p.level, p.baseline, p.date, p.tile, p.spacecraft) == ("L2A", "05.09", "2023-05-12", "T34UDA",
                                                                    "Sentinel-2B")
    assert p.datetime.startswith("2023-05-12T09:55:59")
    assert p.quantification == 10000.0
    assert all(p.offsets_dn[b] == -1000.0 for b in BANDS_10M)
    assert p.wavelengths_nm == {"B02": 492.3, "B03": 559.0, "B04": 665.0, "B08": 833.0}
    assert p.band_paths["B08"].endswith("IMG_DATA/R10m/T34UDA_20230512T095559_B08_10m.jp2")
    assert p.scl_path.endswith("IMG_DATA/R20m/T34UDA_20230512T095559_SCL_20m.jp2")
    rad = p.radiometry("B8")
    assert rad.scale == pytest.approx(1e-4) and rad.offset == pytest.approx(-0.1)
    assert "BOA_ADD_OFFSET" in p.offset_rule


def test_export_reads_to_the_right_reflectance(l2a, tmp_path):
    out = export_product(l2a, tmp_path / "may12.tif")
    for i, b in enumerate(BANDS_10M):
        assert read_band(out, b, 30, 40) == pytest.approx((3452 + i - 1000) / 10000, abs=1e-6)
    with rasterio.open(out) as ds:
        assert ds.descriptions == BANDS_10M
        assert ds.dtypes[0] == "uint16" and ds.nodata == 0
        assert ds.scales[0] == pytest.approx(1e-4) and ds.offsets[0] == pytest.approx(-0.1)
        assert ds.read(4)[30, 40] == 3452 + 3  # DN kept as they are
        tags = ds.tags()
    assert tags["S2_DATE"] == "2023-05-12" and tags["S2_LEVEL"] == "L2A" and tags["S2_BASELINE"] == "05.09"
    assert tags["S2_TILE"] == "T34UDA" and "BOA_ADD_OFFSET -1000" in tags["S2_OFFSET_RULE"]
    assert '"B08": 833.0' in tags["S2_WAVELENGTHS_NM"]
    assert tags["S2_SCL_MASKED"].startswith("0 no data, 1 saturated")


def test_clouds_and_dn_zero_become_nodata(l2a, tmp_path):
    out = export_product(l2a, tmp_path / "clouds.tif")
    with rasterio.open(out) as ds:
        data = ds.read()
    assert (data[:, 0:10, 0:10] == 0).all()  # SCL 9 at 20 m covers 10 x 10 pixels at 10 m
    assert (data[:, 20:22, 20:22] == 0).all()  # cloud shadow
    assert (data[:, 50:52, 50:52] != 0).all()  # dark area (class 2) is kept by default
    assert data[3, 45, 12] == 0 and data[2, 45, 12] == 0  # DN 0 stays nodata
    assert (data[:, 10:20, 10:20] != 0).all()
    assert read_band(out, "B08", 5, 5) is None

    only_cirrus = export_product(l2a, tmp_path / "cirrus_only.tif", scl_nodata=(10,))
    with rasterio.open(only_cirrus) as ds:
        assert (ds.read(1)[0:10, 0:10] != 0).all()


def test_zip_reads_the_same_without_unpacking(l2a, tmp_path):
    z = zip_safe(l2a, tmp_path / (l2a.name[:-5] + ".zip"))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    p = open_product(z)
    assert p.band_paths["B02"].startswith("/vsizip/")
    a = export_product(l2a, tmp_path / "from_folder.tif")
    b = export_product(p, tmp_path / "from_zip.tif")
    with rasterio.open(a) as da, rasterio.open(b) as db:
        assert np.array_equal(da.read(), db.read())
        assert da.tags()["S2_OFFSET_RULE"] == db.tags()["S2_OFFSET_RULE"]
    after = sorted(p.name for p in tmp_path.rglob("*"))
    assert set(after) - set(before) == {"from_folder.tif", "from_zip.tif"}  # nothing unzipped to disk
    assert open_product(l2a / "MTD_MSIL2A.xml").date == "2023-05-12"
    # GDAL's own names for the product work too (a layer QGIS opened through the SENTINEL2 driver).
    assert open_product(f"SENTINEL2_L2A:{l2a / 'MTD_MSIL2A.xml'}:10m:EPSG_32634").level == "L2A"
    inner = f"/vsizip/{z}/{l2a.name}/MTD_MSIL2A.xml"
    assert open_product(f"SENTINEL2_L2A:{inner}:10m:EPSG_32634").band_paths == p.band_paths


def test_extent_crops_on_whole_pixels(l2a, tmp_path):
    # 100 m x 200 m from column 10, row 5; a ragged edge is snapped outward.
    x0, y0 = 499980.0 + 100, 5600040.0 - 50
    out = export_product(l2a, tmp_path / "crop.tif", extent=(x0, y0 - 200 + 3, x0 + 100 - 3, y0))
    full = export_product(l2a, tmp_path / "full.tif")
    with rasterio.open(out) as ds, rasterio.open(full) as whole:
        assert (ds.width, ds.height) == (10, 20)
        assert ds.transform.c == x0 and ds.transform.f == y0
        assert np.array_equal(ds.read(), whole.read(window=Window(10, 5, 10, 20)))


def test_l1c_reads_radio_add_offset_and_has_no_cloud_mask(tmp_path):
    safe = make_safe(tmp_path, level="L1C", bands=known_bands(1), size=SIZE)
    p = open_product(safe)
    assert p.level == "L1C" and p.scl_path is None
    assert p.band_paths["B08"].endswith("IMG_DATA/T34UDA_20230512T095559_B08.jp2")
    assert "RADIO_ADD_OFFSET" in p.offset_rule
    messages = []
    out = export_product(p, tmp_path / "l1c.tif", messages=messages)
    assert read_band(out, "B04", 30, 40) == pytest.approx((3454 - 1000) / 10000, abs=1e-6)
    assert any("L1C products have no scene classification" in m for m in messages)


def test_products_before_baseline_0400_have_no_offset(tmp_path):
    safe = make_safe(tmp_path, date="2021-06-01", baseline="02.14", offset_dn=None, bands=known_bands(2),
                     size=SIZE, spacecraft="Sentinel-2A", spectral=False)
    p = open_product(safe)
    assert all(v == 0.0 for v in p.offsets_dn.values())
    assert "before 04.00" in p.offset_rule
    assert p.wavelengths_nm["B08"] == 832.8  # Sentinel-2A's own, from the table (no spectral list)
    out = export_product(p, tmp_path / "old.tif")
    assert read_band(out, "B02", 30, 40) == pytest.approx(3452 / 10000, abs=1e-6)
    with rasterio.open(out) as ds:
        assert ds.offsets[0] == 0.0


def test_bad_products_give_one_sentence(tmp_path):
    def error(path) -> str:
        with pytest.raises(InputError) as info:
            open_product(path)
        text = str(info.value)
        assert "\n" not in text
        return text

    assert "not found" in error(tmp_path / "nothing.SAFE")
    empty = tmp_path / "empty.SAFE"
    empty.mkdir()
    assert "empty.SAFE" in error(empty) and "no MTD_MSIL1C.xml or MTD_MSIL2A.xml" in error(empty)
    broken = tmp_path / "S2B_MSIL2A_broken.zip"
    broken.write_bytes(b"PK\x03\x04 this is not a whole zip")
    assert "S2B_MSIL2A_broken.zip" in error(broken) and "cannot be read as a zip" in error(broken)
    other = tmp_path / "photos.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("holiday.jpg", b"...")
    assert "holds no Sentinel-2 product" in error(other)
    incomplete = make_safe(tmp_path / "inc", size=SIZE, omit=("B08",))
    text = error(incomplete)
    assert "B08" in text and "missing" in text and incomplete.name in text
    bad_xml = make_safe(tmp_path / "xml", size=SIZE)
    (bad_xml / "MTD_MSIL2A.xml").write_text("<n1:Level-2A_User_Product>", encoding="utf-8")
    assert "not valid XML" in error(bad_xml)
    tif = write_geotiff(tmp_path / "plain.tif", np.ones((4, 4), np.uint16))
    assert "is not a Sentinel-2 product" in error(tif)


def test_export_writes_nothing_into_the_product_and_cleans_up_on_cancel(l2a, tmp_path):
    with pytest.raises(OutputError, match="inside the product folder"):
        export_product(l2a, l2a / "export.tif")
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        export_product(l2a, tmp_path / "cancelled.tif", cancel=token)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="not one of the 10 m bands"):
        export_product(l2a, tmp_path / "b05.tif", bands=("B05",))


def test_baseline_rule_from_name_date_or_choice():
    off, why = baseline_rule("S2B_MSIL2A_20230512T095559_N0509_R079_T34UDA_20230512T120000_B08.tif", {})
    assert off == -0.1 and "05.09" in why and "product name" in why
    off, why = baseline_rule("S2A_MSIL2A_20200626T095029_N0214_R079_T34VFN_20200626T123234.tif", {})
    assert off == 0.0 and "before 04.00" in why
    # Reprocessed collection-1 products of old dates carry the offset: the name's baseline wins over the date.
    assert baseline_rule("S2A_MSIL1C_20190101T102431_N0500_R065_T30NWM_20230101T000000.tif", {})[0] == -0.1
    off, why = baseline_rule("2023-05-12-00:00_2023-05-12-23:59_Sentinel-2_L2A_B08_(Raw).tiff", {})
    assert off == 0.0 and "Sentinel Hub" in why and "harmonized" in why
    off, why = baseline_rule("nir_2023-05-12.tif", {})
    assert off == -0.1 and "2022-01-25" in why
    assert baseline_rule("nir_2021-12-30.tif", {})[0] == 0.0
    assert baseline_rule("nir.tif", {}, date="2022-01-25")[0] == -0.1
    assert baseline_rule("nir.tif", {"PROCESSING_BASELINE": "03.01"})[0] == 0.0
    off, why = baseline_rule("nir.tif", {})
    assert off == 0.0 and "no processing baseline" in why
    assert baseline_rule("nir_2023-05-12.tif", {}, choice="pre-04.00")[0] == 0.0
    off, why = baseline_rule("nir.tif", {}, choice="04.00+")
    assert off == -0.1 and "as chosen" in why


def test_frame_info_from_names_descriptions_and_tags(l2a, tmp_path):
    p = open_product(l2a)
    with rasterio.open(p.band_paths["B08"]) as ds:
        info = frame_info(p.band_paths["B08"], 1, ds)
    assert (info.band, info.date, info.is_sr_output) == ("B08", "2023-05-12", False)
    assert info.pixel_size_m == pytest.approx(10.0)

    eo = write_geotiff(tmp_path / "2023-05-17-00_00_2023-05-17-23_59_Sentinel-2_L2A_B04_(Raw).tiff",
                       np.ones((8, 8), np.uint16))
    with rasterio.open(eo) as ds:
        info = frame_info(eo, 1, ds)
    assert (info.band, info.date, info.wavelength_nm) == ("B04", "2023-05-17", 665.0)

    stack = write_geotiff(tmp_path / "stack.tif", np.ones((3, 8, 8), np.uint16),
                          descriptions=["B8_2023-05-02", "B08_2023-05-12", "band 3"],
                          band_tags=[{}, {}, {"WAVELENGTH": "0.665", "WAVELENGTH_UNIT": "um"}])
    with rasterio.open(stack) as ds:
        infos = [frame_info(stack, b, ds) for b in (1, 2, 3)]
    assert [(i.band, i.date) for i in infos] == [("B08", "2023-05-02"), ("B08", "2023-05-12"), ("B04", None)]
    assert infos[2].wavelength_nm == pytest.approx(665.0)

    sr = write_geotiff(tmp_path / "sr.tif", np.ones((8, 8), np.float32),
                       transform=Affine(10 / 3, 0, 499980, 0, -10 / 3, 5600040),
                       tags={"SR_SCALE": "3", "SR_BAND": "B8"}, nodata=None)
    with rasterio.open(sr) as ds:
        info = frame_info(sr, 1, ds)
    assert info.is_sr_output and info.band == "B08" and info.pixel_size_m == pytest.approx(10 / 3)


def test_ground_pixel_size_is_measured_on_the_ground(tmp_path):
    # 10 m at 50 N in degrees, and in Web Mercator (whose units are 1/cos(50) = 1.556 times a ground metre there).
    lat = 50.0
    deg = write_geotiff(tmp_path / "deg.tif", np.ones((20, 20), np.uint16), crs="EPSG:4326",
                        transform=Affine(10 / (111320 * np.cos(np.radians(lat))), 0, 20.0, 0, -10 / 110574, lat))
    merc_unit = 10 / np.cos(np.radians(lat))
    merc = write_geotiff(tmp_path / "merc.tif", np.ones((20, 20), np.uint16), crs="EPSG:3857",
                         transform=Affine(merc_unit, 0, 2226389.8, 0, -merc_unit, 6446275.8))
    for path in (deg, merc):
        with rasterio.open(path) as ds:
            assert ground_pixel_size(ds) == pytest.approx(10.0, rel=0.01), path.name


def test_band_names_are_canonical():
    assert [band_key(b) for b in ("B8", "b08", "B08", "B8A", "B08A", "nir", "B13", "x")] == [
        "B08", "B08", "B08", "B8A", "B8A", "B08", None, None]


def test_a_band_file_inside_its_product_keeps_its_jp2_readable(tmp_path):
    # A JP2 written by the fixture is lossless: DN come back exactly.
    data = (np.arange(64 * 64) % 5000 + 1).astype(np.uint16).reshape(64, 64)
    path = write_jp2(tmp_path / "T34UDA_20230512T095559_B08_10m.jp2", data,
                     Affine(10, 0, 499980, 0, -10, 5600040))
    with rasterio.open(path) as ds:
        assert np.array_equal(ds.read(1, window=Window(0, 0, 64, 64)), data)


# Peak memory of the export alone: VmHWM starts afresh at exec, while ru_maxrss would carry the
# forking parent's (pytest's) peak into the child.
_MEMORY_PROBE = """
import sys
from pathlib import Path
from core.io.s2_product import export_product
export_product(Path(sys.argv[1]), Path(sys.argv[2]))
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


@pytest.mark.slow
def test_export_memory_does_not_grow_with_the_rows(tmp_path):
    """A full-width (10980 px) product: peak memory with 3 strips of rows equals that with 1 strip."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc to measure a child's peak memory")
    import subprocess
    import sys

    from tests.s2_fixtures import ROOT

    peaks = []
    for rows in (1024, 3072):
        yy, xx = np.mgrid[0:rows, 0:10980]
        base = (1500 + (xx % 700) + (yy % 300)).astype(np.uint16)
        folder = tmp_path / f"r{rows}"
        safe = make_safe(folder, bands={b: base + 10 * i for i, b in enumerate(BANDS_10M)},
                         scl=np.full((rows // 2, 5490), 4, np.uint8), size=10980)
        del yy, xx, base
        run = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(safe), str(folder / "out.tif")],
                             cwd=ROOT, capture_output=True, text=True, check=True)
        peaks.append(int(run.stdout.split()[-1]) / 1024)
    assert peaks[1] < peaks[0] + 40, f"peak RSS grew with the rows: {peaks[0]:.0f} -> {peaks[1]:.0f} MB"
