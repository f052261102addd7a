"""MuS2 reader on tiny fake trees laid out like the published benchmark."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from core.data.mus2 import MUS2_BAND_PAIRS, find_mus2_scenes, read_mus2, read_mus2_scene
from core.data.scene import SceneError, write_scene
from core.io.geo import compose

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

LR_T = Affine(10.0, 0.0, 423_000.0, 0.0, -10.0, 5_546_000.0)
DATES = ["20190412", "20190517", "20190621", "20190726"]


def _write(path: Path, data: np.ndarray, transform: Optional[Affine] = LR_T, nodata=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", height=data.shape[0], width=data.shape[1], count=1, dtype=data.dtype)
    if transform is not None:
        profile.update(crs="EPSG:32634", transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(data[None])


def fake_scene(
    root: Path,
    name: str,
    h: int = 10,
    w: int = 12,
    t: int = 3,
    bands: Sequence[str] = ("b8", "b4"),
    hr_dtype=np.uint8,
    hr_size: Optional[tuple] = None,
    upper: bool = False,
    masks: bool = False,
    seed: int = 0,
) -> Path:
    """One MuS2-like scene: <b>/lrs/S2*_MSIL2A_<date>T...tif revisits and hr_resized/mul_band_{0..7}.tiff."""
    rng = np.random.default_rng(seed)
    scene = root / name
    for b in bands:
        band_dir = scene / (b.upper() if upper else b) / ("LRS" if upper else "lrs")
        for k in range(t):
            dn = rng.integers(200, 5000, size=(h, w)).astype(np.uint16)
            dn[0, 0] = 0  # S-2 nodata
            ext = ".TIFF" if upper else ".tif"
            _write(band_dir / f"S2A_MSIL2A_{DATES[k]}T100031_N0212_R122_T34UDA{ext}", dn, nodata=0)
    hh, ww = hr_size or (3 * h, 3 * w)
    hr_dir = scene / ("HR_RESIZED" if upper else "hr_resized")
    for i in range(8):
        if hr_dtype == np.uint8:
            data = rng.integers(1, 255, size=(hh, ww)).astype(np.uint8)
        else:
            data = rng.integers(1, 9000, size=(hh, ww)).astype(hr_dtype)
        fname = f"MUL_BAND_{i}.TIF" if upper else f"mul_band_{i}.tiff"
        _write(hr_dir / fname, data, transform=None)  # resized with an image library: no georeferencing
    if masks:
        m = np.zeros((hh, ww), np.uint8)
        m[3:9, 6:12] = 1
        _write(scene / "masks" / "buildings.tif", m, transform=compose(LR_T, Affine.scale(1 / 3)))
    return scene


def test_band_pairs_follow_the_evaluator() -> None:
    assert MUS2_BAND_PAIRS == {"B2": "mul_band_1", "B3": "mul_band_2", "B4": "mul_band_4", "B8": "mul_band_6"}


def test_reads_nir_by_default_with_radiometry_dates_and_grid(tmp_path: Path) -> None:
    path = fake_scene(tmp_path, "S01_34UDA", masks=True)
    (sc,) = read_mus2(tmp_path)
    assert sc.name == "S01_34UDA" and sc.bands == ["B8"] and sc.scale == 3
    assert sc.lr.shape == (3, 1, 10, 12) and sc.hr.shape == (1, 30, 36)
    with rasterio.open(sorted((path / "b8" / "lrs").iterdir())[1]) as ds:
        dn = ds.read(1)
    np.testing.assert_allclose(sc.lr[1, 0], dn * 1e-4 * (dn > 0), rtol=1e-6)
    assert not sc.lr_valid[:, 0, 0].any() and sc.lr_valid[:, 1:, 1:].all()
    with rasterio.open(path / "hr_resized" / "mul_band_6.tiff") as ds:
        np.testing.assert_allclose(sc.hr[0], ds.read(1) / 255.0, rtol=1e-6)  # uint8 -> 1/255 assumed
    assert sc.extra["hr_radiometric_scale"] == {"B8": pytest.approx(1 / 255)}
    assert sc.dates == ["2019-04-12", "2019-05-17", "2019-06-21"]
    assert sc.crs and sc.lr_transform == LR_T and sc.hr_transform == compose(LR_T, Affine.scale(1 / 3))
    assert sc.masks["buildings"].sum() == 36 and "roads" not in sc.masks
    sc.validate()
    write_scene(sc, tmp_path / "out" / sc.name)  # a MuS2 scene converts to the project's format


def test_other_bands_and_parameters(tmp_path: Path) -> None:
    fake_scene(tmp_path, "S01", hr_dtype=np.uint16)
    sc = read_mus2_scene(tmp_path / "S01", bands=["B4", "B8"], lr_offset=-1000, hr_radiometric_scale=2e-4)
    assert sc.bands == ["B4", "B8"] and sc.lr.shape == (3, 2, 10, 12) and sc.hr.shape == (2, 30, 36)
    with rasterio.open(sorted((tmp_path / "S01" / "b4" / "lrs").iterdir())[0]) as ds:
        dn = ds.read(1).astype(np.float64)
    np.testing.assert_allclose(sc.lr[0, 0][1:, 1:], ((dn - 1000) * 1e-4)[1:, 1:], rtol=1e-5)
    with rasterio.open(tmp_path / "S01" / "hr_resized" / "mul_band_4.tiff") as ds:
        np.testing.assert_allclose(sc.hr[0], ds.read(1) * 2e-4, rtol=1e-6)
    auto = read_mus2_scene(tmp_path / "S01", bands=["nir"])
    assert auto.bands == ["B8"] and auto.extra["hr_radiometric_scale"]["B8"] == 1e-4  # 16-bit assumption


def test_tolerant_of_case_extensions_and_image_data_level(tmp_path: Path) -> None:
    fake_scene(tmp_path / "image_data", "A", upper=True)
    fake_scene(tmp_path / "image_data", "B")
    (tmp_path / "image_data" / "notes").mkdir()
    assert [p.name for p in find_mus2_scenes(tmp_path)] == ["A", "B"]
    a, b = read_mus2(tmp_path)
    assert a.lr.shape == b.lr.shape == (3, 1, 10, 12) and a.hr.shape == (1, 30, 36)


def test_hr_off_by_a_few_pixels_is_cropped_far_off_is_refused(tmp_path: Path) -> None:
    fake_scene(tmp_path, "near", hr_size=(31, 35))
    sc = read_mus2_scene(tmp_path / "near")
    assert sc.lr.shape[-2:] == (10, 11) and sc.hr.shape[-2:] == (30, 33)
    sc.validate()
    fake_scene(tmp_path, "far", hr_size=(40, 36))
    with pytest.raises(SceneError, match=r"mul_band_6\.tiff.*not 3x the LR grid"):
        read_mus2_scene(tmp_path / "far")


def test_missing_parts_say_what_was_expected(tmp_path: Path) -> None:
    fake_scene(tmp_path, "S01")
    with pytest.raises(SceneError, match=r"band B2.*b2/lrs"):
        read_mus2_scene(tmp_path / "S01", bands=["B2"])
    with pytest.raises(SceneError, match="MuS2 has bands"):
        read_mus2_scene(tmp_path / "S01", bands=["B11"])
    (tmp_path / "S01" / "hr_resized" / "mul_band_6.tiff").unlink()
    with pytest.raises(SceneError, match=r"hr_resized.*no mul_band_6\.tiff"):
        read_mus2_scene(tmp_path / "S01")
    assert read_mus2_scene(tmp_path / "S01", with_hr=False).hr is None
    for f in (tmp_path / "S01" / "b8" / "lrs").iterdir():
        f.unlink()
    with pytest.raises(SceneError, match=r"lrs.*no revisit rasters"):
        read_mus2_scene(tmp_path / "S01")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneError, match=r"no MuS2 scenes found.*b8/lrs"):
        read_mus2(tmp_path / "empty")


def test_revisits_on_different_grids_and_non_rasters(tmp_path: Path) -> None:
    scene = fake_scene(tmp_path, "S01")
    files = sorted((scene / "b8" / "lrs").iterdir())
    _write(files[2], np.ones((10, 12), np.uint16), transform=compose(LR_T, Affine.translation(2, 0)), nodata=0)
    with pytest.raises(SceneError, match=r"20190621.*different grid"):
        read_mus2_scene(scene)
    _write(files[2], np.ones((9, 12), np.uint16), nodata=0)
    with pytest.raises(SceneError, match=r"20190621.*one grid"):
        read_mus2_scene(scene)
    files[2].write_text("not a raster")
    with pytest.raises(SceneError, match=r"20190621.*not a raster"):
        read_mus2_scene(scene)
    fake_scene(tmp_path, "S02", bands=("b8",))
    sc4 = tmp_path / "S02" / "b4" / "lrs"
    sc4.mkdir(parents=True)
    _write(sc4 / "S2A_MSIL2A_20190412T1.tif", np.ones((10, 12), np.uint16), nodata=0)
    with pytest.raises(SceneError, match="band B4 has 1 revisits but B8 has 3"):
        read_mus2_scene(tmp_path / "S02", bands=["B8", "B4"])


def test_split_computed_or_read(tmp_path: Path) -> None:
    for i in range(10):
        fake_scene(tmp_path, f"S{i:02d}", h=3, w=3, t=1, bands=("b8",), seed=i)
    scenes = read_mus2(tmp_path)
    counts = {k: sum(s.split == k for s in scenes) for k in ("train", "val", "test")}
    assert counts == {"train": 8, "val": 1, "test": 1}
    test = read_mus2(tmp_path, split="test")
    assert len(test) == 1 and test[0].split == "test"
    (tmp_path / "split.json").write_text(json.dumps({"train": ["S00"], "val": ["S01"], "test": ["S02", "S03"]}))
    assert [s.name for s in read_mus2(tmp_path, split="test")] == ["S02", "S03"]


def test_match_hr_to_lr_fits_gain_and_offset(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    h, w = 8, 9
    base = rng.random((h, w))
    scene = tmp_path / "S"
    for k in range(3):
        _write(scene / "b8" / "lrs" / f"S2B_MSIL2A_{DATES[k]}T1.tif", (1000 + 3000 * base).astype(np.uint16), nodata=0)
    hr = np.kron(base, np.ones((3, 3)))  # HR whose 3x3 means are `base`
    _write(scene / "hr_resized" / "mul_band_6.tiff", (10 + 200 * hr).astype(np.uint8), transform=None)
    sc = read_mus2_scene(scene, match_hr_to_lr=True)
    down = sc.hr[0].reshape(h, 3, w, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(down, sc.lr[0, 0], atol=3e-3)
    assert sc.extra["hr_lr_fit"][0]["gain"] == pytest.approx(0.3 * 255 / 200, rel=0.02)


def test_import_and_simulate_mus2_tree(tmp_path: Path) -> None:
    from core.cli.main import main
    from core.data.scene import list_scenes, load_split, read_scene

    for i in range(3):
        fake_scene(tmp_path / "mus2", f"S{i}", h=6, w=6, t=2, bands=("b8",), seed=i)
    assert main(["import-mus2", "--src", str(tmp_path / "mus2"), "--out", str(tmp_path / "real")]) == 0
    assert [p.name for p in list_scenes(tmp_path / "real")] == ["S0", "S1", "S2"]
    real = read_scene(tmp_path / "real" / "S1")
    direct = read_mus2_scene(tmp_path / "mus2" / "S1")
    np.testing.assert_allclose(real.lr, direct.lr, atol=5.1e-5)
    np.testing.assert_allclose(real.hr, direct.hr, atol=5.1e-5)
    assert real.dates == direct.dates and real.split in ("train", "val", "test")
    assert main(["simulate", "--src", str(tmp_path / "mus2"), "--out", str(tmp_path / "sim"), "--frames", "4"]) == 0
    sim = read_scene(tmp_path / "sim" / "S1")
    assert sim.frames == 4 and sim.extra["simulated"]
    np.testing.assert_allclose(sim.hr, direct.hr, atol=5.1e-5)
    assert load_split(tmp_path / "sim") == load_split(tmp_path / "real")
