"""Synthetic towns: reproducible, georeferenced, with masks, and hard for 3x downsampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rasterio.crs import CRS

from core.data.scene import list_scenes, load_split, read_scene
from core.data.synthetic.towns import HR_PIXEL_M, fractal_noise, make_dataset, make_scene


@pytest.fixture(scope="module")
def scene():
    return make_scene(size_hr=192, frames=4, seed=11)


def test_reproducible_by_seed_and_different_for_other_seeds(scene) -> None:
    again = make_scene(size_hr=192, frames=4, seed=11)
    np.testing.assert_array_equal(scene.hr, again.hr)
    np.testing.assert_array_equal(scene.lr, again.lr)
    np.testing.assert_array_equal(scene.masks["buildings"], again.masks["buildings"])
    assert scene.lr_transform == again.lr_transform and scene.dates == again.dates
    other = make_scene(size_hr=192, frames=4, seed=12)
    assert not np.array_equal(scene.hr, other.hr)
    assert not np.array_equal(scene.masks["roads"], other.masks["roads"])


def test_values_masks_and_georeferencing(scene) -> None:
    scene.validate()
    assert scene.hr.shape == (1, 192, 192) and scene.lr.shape == (4, 1, 64, 64)
    assert scene.hr.dtype == np.float32 and scene.lr.dtype == np.float32
    assert scene.hr.min() >= np.float32(0.02) and scene.hr.max() <= np.float32(0.6)
    assert np.isfinite(scene.lr).all() and scene.lr_valid.all()
    b, r = scene.masks["buildings"], scene.masks["roads"]
    assert 0.01 < b.mean() < 0.3 and 0.01 < r.mean() < 0.3
    assert not (b & r).any()  # footprints never overlap
    assert CRS.from_user_input(scene.crs).to_epsg() == 32634
    assert scene.hr_transform.a == pytest.approx(HR_PIXEL_M) and scene.hr_transform.e == pytest.approx(-HR_PIXEL_M)
    assert scene.lr_transform.a == pytest.approx(10.0)
    x0, y0 = scene.lr_transform.c, scene.lr_transform.f
    assert 166_000 < x0 < 834_000 and 5_000_000 < y0 < 6_000_000  # inside UTM 34N, central Europe
    assert x0 % 10 == 0 and y0 % 10 == 0  # on the S-2 10 m grid
    assert len(scene.dates) == 4 and scene.dates == sorted(scene.dates)


def test_buildings_and_roads_of_several_sizes(scene) -> None:
    sizes = np.array([bd["npix"] for bd in scene.extra["_buildings"]])
    assert (sizes <= 9).sum() >= 5 and (sizes >= 60).sum() >= 2
    values = np.array([bd["value"] for bd in scene.extra["_buildings"]])
    assert (values > 0.38).any() and (values < 0.16).any()  # brighter and darker roofs
    widths = np.array([rd["width"] for rd in scene.extra["_roads"]])
    assert widths.min() <= 2.0 and widths.max() >= 4.0


def test_small_buildings_are_lost_at_10m(scene) -> None:
    """Contrast of a building against its surroundings, in HR vs in the LR frame upsampled back.

    2-3 px buildings keep little of their contrast (they vanish into the 10 m pixel); big ones keep much more.
    """
    hr = scene.hr[0]
    up = F.interpolate(torch.from_numpy(scene.lr[0, 0])[None, None], scale_factor=3, mode="bicubic")[0, 0].numpy()
    occupied = scene.masks["buildings"]
    n = hr.shape[0]
    small, big = [], []
    for bd in scene.extra["_buildings"]:
        r = int(0.5 * np.hypot(bd["w"], bd["h"])) + 4
        y0, x0 = max(int(bd["cy"]) - r, 0), max(int(bd["cx"]) - r, 0)
        y1, x1 = min(int(bd["cy"]) + r + 1, n), min(int(bd["cx"]) + r + 1, n)
        yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
        c, s = np.cos(bd["angle"]), np.sin(bd["angle"])
        u = (xx - bd["cx"]) * c + (yy - bd["cy"]) * s
        v = -(xx - bd["cx"]) * s + (yy - bd["cy"]) * c
        foot = (np.abs(u) <= bd["w"] / 2) & (np.abs(v) <= bd["h"] / 2)
        ring = ~occupied[y0:y1, x0:x1] & ~foot & (np.abs(u) <= bd["w"] / 2 + 3) & (np.abs(v) <= bd["h"] / 2 + 3)
        if ring.sum() < 4:
            continue
        c_hr = hr[y0:y1, x0:x1][foot].mean() - hr[y0:y1, x0:x1][ring].mean()
        if abs(c_hr) < 0.05:
            continue
        ratio = (up[y0:y1, x0:x1][foot].mean() - up[y0:y1, x0:x1][ring].mean()) / c_hr
        (small if bd["npix"] <= 9 else big if bd["npix"] >= 60 else []).append(ratio)
    assert len(small) >= 5 and len(big) >= 2
    assert np.median(small) < 0.3
    assert np.median(big) > 2 * np.median(small)


def test_real_world_revisits_are_inconsistent() -> None:
    sc = make_scene(size_hr=96, frames=8, seed=4, real_world=True)
    assert sc.extra["version"] == "real-world"
    assert np.isfinite(sc.lr).all()
    assert np.all(sc.lr[:, 0][~sc.lr_valid] == 0.0)
    means = [sc.lr[t, 0][sc.lr_valid[t]].mean() for t in range(sc.frames)]
    assert np.ptp(means) > 0.01  # gain, haze and season differ between revisits
    shifts = np.array(sc.extra["shifts_hr"])
    assert np.abs(shifts).max() <= 3.0 and not np.all(shifts[0] == 0)  # no revisit aligned with HR
    gains = [f["gain"] for f in sc.extra["frames"]]
    assert np.ptp(gains) > 0.02
    cloudy = [
        make_scene(size_hr=48, frames=6, seed=s, real_world=True).lr_valid.mean(axis=(1, 2)).min() for s in range(6)
    ]
    assert min(cloudy) < 1.0  # some revisits carry clouds / nodata
    # same HR as the simulated version of the seed: only the revisits differ
    np.testing.assert_array_equal(sc.hr, make_scene(size_hr=96, frames=8, seed=4).hr)


def test_fractal_noise_is_normalised() -> None:
    z = fractal_noise((64, 80), 2.0, np.random.default_rng(0))
    assert z.shape == (64, 80) and abs(z.mean()) < 1e-5 and z.std() == pytest.approx(1.0, rel=1e-4)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="multiple of 3"):
        make_scene(size_hr=100)
    with pytest.raises(ValueError, match="frames"):
        make_scene(size_hr=48, frames=0)


def test_make_dataset_writes_scenes_and_split(tmp_path: Path) -> None:
    paths = make_dataset(tmp_path, n_scenes=3, size_hr=48, seed=5, frames=2)
    assert [p.name for p in paths] == ["synth_000", "synth_001", "synth_002"]
    assert list_scenes(tmp_path) == paths
    split = load_split(tmp_path)
    assert sorted(sum(split.values(), [])) == [p.name for p in paths]
    assert all(len(v) == 1 for v in split.values())
    back = read_scene(paths[1])
    mem = make_scene(48, 2, seed=(5, 1), name="synth_001")
    np.testing.assert_allclose(back.hr, mem.hr, atol=5.1e-5)  # uint16 DN quantisation
    np.testing.assert_allclose(back.lr, mem.lr, atol=5.1e-5)
    np.testing.assert_array_equal(back.masks["buildings"], mem.masks["buildings"])
    assert back.split in ("train", "val", "test")


def test_cli_synth_split_and_simulate(tmp_path: Path) -> None:
    from core.cli.main import main

    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--scenes", "3", "--size", "48", "--frames", "2", "--real-world"]) == 0
    assert len(list_scenes(out)) == 3 and read_scene(out / "synth_000").extra["version"] == "real-world"
    assert main(["split", "--root", str(out), "--seed", "4", "--fractions", "1,1,1"]) == 0
    assert [len(v) for v in load_split(out).values()] == [1, 1, 1]
    assert main(["simulate", "--src", str(out), "--out", str(tmp_path / "sim"), "--frames", "3"]) == 0
    assert read_scene(tmp_path / "sim" / "synth_001").frames == 3
    assert load_split(tmp_path / "sim") == load_split(out)
    # a user error is a message and exit status 1, not a traceback
    assert main(["simulate", "--src", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 1
