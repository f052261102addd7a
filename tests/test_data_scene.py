"""Scene folder format: round trip, georeferencing, atomic writes, bad input, splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from core.data.scene import (
    Scene,
    SceneError,
    list_scenes,
    load_split,
    make_split,
    read_scene,
    split_names,
    write_scene,
)
from core.io.geo import compose

HR_PX = 10.0 / 3.0


def tiny_scene(t: int = 3, h: int = 8, w: int = 10, seed: int = 0, name: str = "s1") -> Scene:
    rng = np.random.default_rng(seed)
    # reflectance on the 1e-4 DN grid so that the round trip is exact
    lr = (rng.integers(100, 6000, size=(t, 1, h, w)) * 1e-4).astype(np.float32)
    lr_valid = np.ones((t, h, w), bool)
    lr_valid[1, 2:4, 3:6] = False
    lr[~lr_valid[:, None].repeat(1, axis=1)] = 0.0
    hr = (rng.integers(100, 6000, size=(1, 3 * h, 3 * w)) * 1e-4).astype(np.float32)
    hr_valid = np.ones((3 * h, 3 * w), bool)
    hr_valid[0, :5] = False
    hr[0, ~hr_valid] = 0.0
    hr_t = Affine(HR_PX, 0, 423_450.0, 0, -HR_PX, 5_546_780.0)
    return Scene(
        name=name,
        lr=lr,
        lr_valid=lr_valid,
        hr=hr,
        hr_valid=hr_valid,
        masks={"buildings": rng.random((3 * h, 3 * w)) > 0.8, "roads": rng.random((3 * h, 3 * w)) > 0.9},
        crs="EPSG:32634",
        lr_transform=compose(hr_t, Affine.scale(3)),
        hr_transform=hr_t,
        bands=["B8"],
        dates=[f"2021-05-{d:02d}" for d in range(1, t + 1)],
        extra={"note": "test", "_memory_only": object()},
    )


def test_round_trip_same_arrays_and_georeferencing(tmp_path: Path) -> None:
    scene = tiny_scene()
    out = write_scene(scene, tmp_path / "s1")
    back = read_scene(out)
    np.testing.assert_allclose(back.lr, scene.lr, atol=1e-7)
    np.testing.assert_array_equal(back.lr_valid, scene.lr_valid)
    np.testing.assert_allclose(back.hr, scene.hr, atol=1e-7)
    np.testing.assert_array_equal(back.hr_valid, scene.hr_valid)
    for k in ("buildings", "roads"):
        np.testing.assert_array_equal(back.masks[k], scene.masks[k])
        assert back.masks[k].dtype == bool
    assert back.lr.dtype == np.float32 and back.lr.shape == scene.lr.shape
    assert back.lr_transform == scene.lr_transform
    assert back.hr_transform == scene.hr_transform
    assert rasterio.crs.CRS.from_user_input(back.crs) == rasterio.crs.CRS.from_epsg(32634)
    assert back.dates == scene.dates and back.bands == ["B8"] and back.scale == 3
    assert back.extra["note"] == "test" and "_memory_only" not in json.loads((out / "scene.json").read_text())["extra"]
    # every file opens on its own (as QGIS would) in the right place: LR pixel (i, j) and the
    # centre HR pixel (3i+1, 3j+1) have the same centre coordinates
    with rasterio.open(out / "lr" / "t00.tif") as lr_ds, rasterio.open(out / "hr.tif") as hr_ds, rasterio.open(
        out / "masks" / "roads.tif"
    ) as m_ds:
        assert lr_ds.crs.to_epsg() == hr_ds.crs.to_epsg() == m_ds.crs.to_epsg() == 32634
        assert lr_ds.dtypes[0] == "uint16" and lr_ds.nodata == 0 and hr_ds.dtypes[0] == "uint16"
        assert m_ds.dtypes[0] == "uint8" and set(np.unique(m_ds.read(1))) <= {0, 1}
        assert m_ds.transform == hr_ds.transform
        for i, j in [(0, 0), (5, 7), (7, 9)]:
            assert lr_ds.xy(i, j) == pytest.approx(hr_ds.xy(3 * i + 1, 3 * j + 1), abs=1e-6)
        assert lr_ds.bounds == pytest.approx(hr_ds.bounds, abs=1e-6)


def test_dark_valid_pixels_stay_valid(tmp_path: Path) -> None:
    scene = tiny_scene()
    scene.lr[0, 0, 0, 0] = 0.0  # valid but black: must not turn into nodata on disk
    back = read_scene(write_scene(scene, tmp_path / "s"))
    assert back.lr_valid[0, 0, 0]


def test_failed_write_leaves_no_half_scene(tmp_path: Path) -> None:
    scene = tiny_scene()
    scene.extra["bad"] = {1, 2}  # not JSON: fails after every raster was written
    with pytest.raises(TypeError):
        write_scene(scene, tmp_path / "s1")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_whole_scene(tmp_path: Path) -> None:
    write_scene(tiny_scene(t=4), tmp_path / "s1")
    write_scene(tiny_scene(t=2, seed=5), tmp_path / "s1")
    back = read_scene(tmp_path / "s1")
    assert back.frames == 2 and len(list((tmp_path / "s1" / "lr").iterdir())) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["s1"]
    with pytest.raises(SceneError, match="already exists"):
        write_scene(tiny_scene(), tmp_path / "s1", overwrite=False)


def test_invalid_scene_is_refused_before_writing(tmp_path: Path) -> None:
    scene = tiny_scene()
    scene.hr = scene.hr[:, :-1]
    with pytest.raises(SceneError, match="3x the LR grid"):
        write_scene(scene, tmp_path / "s1")
    assert not (tmp_path / "s1").exists()


# ---------------------------------------------------------------------- bad input
def _rewrite(path: Path, data: np.ndarray, transform: Affine, crs: str = "EPSG:32634", **kw) -> None:
    profile = dict(driver="GTiff", height=data.shape[-2], width=data.shape[-1], count=1, dtype=data.dtype,
                   crs=crs, transform=transform, **kw)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.reshape(1, *data.shape[-2:]))


def test_lr_frames_on_different_grids(tmp_path: Path) -> None:
    scene = tiny_scene()
    path = write_scene(scene, tmp_path / "s")
    shifted = compose(scene.lr_transform, Affine.translation(1, 0))
    _rewrite(path / "lr" / "t01.tif", np.ones((8, 10), np.uint16), shifted, nodata=0)
    with pytest.raises(SceneError, match=r"t01\.tif.*different grid"):
        read_scene(path)
    _rewrite(path / "lr" / "t01.tif", np.ones((8, 11), np.uint16), scene.lr_transform, nodata=0)
    with pytest.raises(SceneError, match=r"t01\.tif.*one grid"):
        read_scene(path)


def test_hr_not_three_times_lr(tmp_path: Path) -> None:
    scene = tiny_scene()
    path = write_scene(scene, tmp_path / "s")
    _rewrite(path / "hr.tif", np.ones((24, 32), np.uint16), scene.hr_transform, nodata=0)
    with pytest.raises(SceneError, match=r"hr\.tif.*expected 30x24 px"):
        read_scene(path)
    # right size, wrong place
    _rewrite(path / "hr.tif", np.ones((24, 30), np.uint16), compose(scene.hr_transform, Affine.translation(2, 0)), nodata=0)
    with pytest.raises(SceneError, match=r"hr\.tif.*does not match"):
        read_scene(path)


def test_mask_of_wrong_size(tmp_path: Path) -> None:
    scene = tiny_scene()
    path = write_scene(scene, tmp_path / "s")
    _rewrite(path / "masks" / "roads.tif", np.ones((8, 10), np.uint8), scene.lr_transform)
    with pytest.raises(SceneError, match=r"roads\.tif.*HR grid is 30x24"):
        read_scene(path)


def test_empty_folder_and_missing_parts(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneError, match="empty.*not a scene folder"):
        read_scene(tmp_path / "empty")
    with pytest.raises(SceneError, match="not a folder"):
        read_scene(tmp_path / "nope")
    with pytest.raises(SceneError, match="no scene folders"):
        list_scenes(tmp_path / "empty")
    path = write_scene(tiny_scene(), tmp_path / "s")
    (path / "masks" / "buildings.tif").unlink()
    with pytest.raises(SceneError, match=r"buildings\.tif.*missing"):
        read_scene(path)
    (path / "hr.tif").unlink()
    with pytest.raises(SceneError, match=r"hr\.tif.*missing"):
        read_scene(path)


def test_band_count_mismatch(tmp_path: Path) -> None:
    path = write_scene(tiny_scene(), tmp_path / "s")
    meta = json.loads((path / "scene.json").read_text())
    meta["bands"] = ["B4", "B8"]
    (path / "scene.json").write_text(json.dumps(meta))
    with pytest.raises(SceneError, match=r"scene\.json.*2 bands"):
        read_scene(path)


def test_file_that_is_not_a_raster(tmp_path: Path) -> None:
    path = write_scene(tiny_scene(), tmp_path / "s")
    (path / "lr" / "t02.tif").write_text("this is not an image")
    with pytest.raises(SceneError, match=r"t02\.tif.*not a raster"):
        read_scene(path)
    (path / "scene.json").write_text("{not json")
    with pytest.raises(SceneError, match=r"scene\.json.*not valid JSON"):
        read_scene(path)


def test_nan_and_nodata_become_invalid_zeros(tmp_path: Path) -> None:
    scene = tiny_scene()
    path = write_scene(scene, tmp_path / "s")
    data = np.full((8, 10), 2500.0, np.float32)
    data[1, 1] = np.nan
    data[2, 2] = -9999.0
    _rewrite(path / "lr" / "t00.tif", data, scene.lr_transform, nodata=-9999.0)
    back = read_scene(path)
    assert np.isfinite(back.lr).all()
    assert not back.lr_valid[0, 1, 1] and not back.lr_valid[0, 2, 2]
    assert back.lr[0, 0, 1, 1] == 0.0 and back.lr[0, 0, 2, 2] == 0.0
    assert back.lr[0, 0, 0, 0] == pytest.approx(0.25)
    assert back.lr_valid[0].sum() == 8 * 10 - 2


# ---------------------------------------------------------------------- datasets
def _fake_dataset(root: Path, n: int) -> None:
    for i in range(n):
        (root / f"scene_{i:03d}" / "lr").mkdir(parents=True)


def test_split_72_9_9_reproducible(tmp_path: Path) -> None:
    _fake_dataset(tmp_path, 90)
    a = make_split(tmp_path, seed=0)
    assert [len(a[k]) for k in ("train", "val", "test")] == [72, 9, 9]
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert load_split(tmp_path) == a
    assert make_split(tmp_path, seed=0) == a
    assert [p.name for p in list_scenes(tmp_path, "val")] == a["val"]
    assert make_split(tmp_path, seed=1) != a


@pytest.mark.parametrize("n,expected", [(1, [1, 0, 0]), (2, [2, 0, 0]), (3, [1, 1, 1]), (5, [3, 1, 1]),
                                        (20, [16, 2, 2]), (91, [73, 9, 9])])
def test_split_proportional_with_minimum(n: int, expected: list) -> None:
    a = split_names([f"s{i}" for i in range(n)], seed=3)
    assert [len(a[k]) for k in ("train", "val", "test")] == expected


def test_list_scenes_needs_split_file_for_a_split(tmp_path: Path) -> None:
    _fake_dataset(tmp_path, 4)
    assert len(list_scenes(tmp_path)) == 4
    with pytest.raises(SceneError, match=r"split\.json.*python -m core\.cli split"):
        list_scenes(tmp_path, "train")
    with pytest.raises(SceneError, match="unknown split"):
        list_scenes(tmp_path, "training")


def test_read_scene_takes_split_from_dataset(tmp_path: Path) -> None:
    for i in range(3):
        write_scene(tiny_scene(name=f"s{i}", seed=i), tmp_path / f"s{i}")
    a = make_split(tmp_path)
    for split, names in a.items():
        for name in names:
            assert read_scene(tmp_path / name).split == split
