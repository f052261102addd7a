"""Synthetic world v2: four bands, georeferenced, mostly object-free land with plausible spectra."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.crs import CRS

from core.data.scene import list_scenes, load_split, read_scene, write_scene
from core.data.synthetic.land import COVER
from core.data.synthetic.towns import HR_PIXEL_M
from core.data.synthetic.world_v2 import (
    BANDS,
    OBJECT_FREE_MARGIN_PX,
    WorldParams,
    make_world_dataset,
    make_world_scene,
    object_free_mask,
)

SIZE = 192


@pytest.fixture(scope="module")
def scenes():
    """Scenes with objects (seeds chosen by the generator, not by us) and a real-world-like one."""
    return [make_world_scene(SIZE, frames=4, seed=s, object_free=False) for s in range(4)]


@pytest.fixture(scope="module")
def real():
    return make_world_scene(SIZE, frames=6, seed=7, real_world=True, object_free=False)


def _cover(scene, *names):
    codes = [COVER[n] for n in names]
    return np.isin(scene.extra["_land_cover"], codes)


def test_shapes_bands_and_georeferencing(scenes) -> None:
    for s in scenes:
        s.validate()
        assert s.bands == ["B02", "B03", "B04", "B08"] == list(BANDS)
        assert s.hr.shape == (4, SIZE, SIZE) and s.lr.shape == (4, 4, SIZE // 3, SIZE // 3)
        assert s.hr.dtype == np.float32 and s.lr.dtype == np.float32
        assert np.isfinite(s.hr).all() and np.isfinite(s.lr).all()
        assert 0.0 < s.hr.min() and s.hr.max() <= 1.0
        assert CRS.from_user_input(s.crs).to_epsg() == 32634
        assert s.lr_transform.a == pytest.approx(10.0) and s.lr_transform.e == pytest.approx(-10.0)
        assert s.hr_transform.a == pytest.approx(HR_PIXEL_M)
        # origins on the 10 m S-2 grid, and the HR grid exactly 3x finer than the LR grid
        assert s.lr_transform.c % 10 == 0 and s.lr_transform.f % 10 == 0
        assert (s.hr_transform.c, s.hr_transform.f) == (s.lr_transform.c, s.lr_transform.f)
        assert len(s.dates) == 4 and s.dates == sorted(s.dates)


def test_masks_are_aligned_with_what_the_image_shows(scenes) -> None:
    for s in scenes:
        b, r = s.masks["buildings"], s.masks["roads"]
        assert b.shape == r.shape == (SIZE, SIZE) and b.dtype == bool
        cover = s.extra["_land_cover"]
        if b.any():  # footprints: roofs, unless a tree crown hangs over the edge
            assert np.isin(cover[b], [COVER["building"], COVER["tree"], COVER["shrub"]]).mean() > 0.8
        if r.any():  # carriageways: road surface, unless under trees or a building edge pixel
            on_road = np.isin(cover[r], [COVER["road"], COVER["tree"], COVER["shrub"], COVER["building"]]).mean()
            assert on_road > 0.75
            # a road is darker in NIR than the vegetation around it
            veg = _cover(s, "grassland", "forest_deciduous", "tree")
            if veg.sum() > 100:
                assert np.median(s.hr[3][r]) < np.median(s.hr[3][veg])
        assert not (b & r).any() or (b & r).mean() < 1e-3
    assert any(s.masks["buildings"].any() for s in scenes) and any(s.masks["roads"].any() for s in scenes)


def test_at_least_half_of_every_scene_is_object_free(scenes, real) -> None:
    for s in scenes + [real]:
        free = object_free_mask(s.masks, OBJECT_FREE_MARGIN_PX)
        assert free.mean() >= 0.5, (s.name, free.mean())
        assert s.extra["object_free_share"] == pytest.approx(free.mean(), abs=1e-3)


def test_object_free_mask_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    roads = np.zeros((40, 40), bool)
    roads[rng.integers(0, 40, 6), rng.integers(0, 40, 6)] = True
    masks = {"buildings": np.zeros_like(roads), "roads": roads}
    got = object_free_mask(masks, 3.0)
    ys, xs = np.nonzero(roads)
    yy, xx = np.mgrid[0:40, 0:40]
    d = np.min(np.hypot(yy[..., None] - ys, xx[..., None] - xs), axis=-1)
    np.testing.assert_array_equal(got, d > 3.0)


def test_object_free_scenes_have_empty_masks_and_still_varied_land() -> None:
    s = make_world_scene(SIZE, frames=2, seed=3, object_free=True)
    assert not s.masks["buildings"].any() and not s.masks["roads"].any()
    assert s.extra["n_buildings"] == 0 and s.extra["n_roads"] == 0
    assert s.extra["object_free_share"] == 1.0
    assert len(s.extra["land_cover_share"]) >= 3  # not one uniform surface


def test_spectra_of_land_cover_classes(scenes, real) -> None:
    for s in scenes:
        hr = s.hr
        ndvi = (hr[3] - hr[2]) / (hr[3] + hr[2])
        # canopies: NDVI > 0.5; meadows may be freshly mown (hay) on the HR date, so less green
        for names, red, green in ((("forest_deciduous", "forest_mixed", "tree"), 0.06, 0.5), (("grassland",), 0.13, 0.3)):
            m = _cover(s, *names)
            if m.sum() > 50:
                assert np.median(ndvi[m]) > green, (s.name, names)
                assert 0.15 < np.median(hr[3][m]) < 0.5
                assert np.median(hr[2][m]) < red
        water = _cover(s, "water")
        core = water & np.roll(water, 1, 0) & np.roll(water, -1, 0) & np.roll(water, 1, 1) & np.roll(water, -1, 1)
        if core.sum() > 20:
            assert np.percentile(hr[3][core], 95) < 0.05
            assert np.median(hr[3][core]) < np.median(hr[1][core]) + 0.01  # water is no brighter in NIR than green
        roofs = s.masks["buildings"]
        if roofs.sum() > 20:
            assert np.median(ndvi[roofs]) < 0.35
    # vegetation overall: bright in NIR, dark in red
    veg = np.concatenate([s.hr[:, _cover(s, "forest_deciduous", "grassland")] for s in scenes], axis=1)
    assert 0.25 < np.median(veg[3]) < 0.45 and 0.015 < np.median(veg[2]) < 0.07


def test_reproducible_by_seed() -> None:
    a = make_world_scene(96, frames=3, seed=(5, 2), object_free=False)
    b = make_world_scene(96, frames=3, seed=(5, 2), object_free=False)
    np.testing.assert_array_equal(a.hr, b.hr)
    np.testing.assert_array_equal(a.lr, b.lr)
    np.testing.assert_array_equal(a.masks["roads"], b.masks["roads"])
    assert a.lr_transform == b.lr_transform and a.dates == b.dates
    c = make_world_scene(96, frames=3, seed=(5, 3), object_free=False)
    assert not np.array_equal(a.hr, c.hr)


def test_simulated_revisits_are_consistent_with_the_hr_image(scenes) -> None:
    s = scenes[0]
    assert s.lr_valid.all()
    assert s.extra["shifts_hr"][0] == [0.0, 0.0]
    # frame 0 is the unshifted degradation of HR: close to its 3x3 block mean, in every band
    block = s.hr.reshape(4, SIZE // 3, 3, SIZE // 3, 3).mean(axis=(2, 4))
    err = np.abs(s.lr[0] - block)[:, 2:-2, 2:-2]
    assert err.mean() < 0.01
    # all revisits agree in mean radiometry (no gain, haze or season in the simulated version)
    means = s.lr.mean(axis=(2, 3))
    assert np.abs(means - means[0]).max() < 0.003


def test_real_world_revisits_differ(real) -> None:
    f = real.extra["frames"]
    assert len(f) == 6 and len(set(real.dates)) >= 3
    gains = [x["gain"] for x in f]
    assert max(gains) - min(gains) > 0.01
    shifts = np.asarray(real.extra["shifts_hr"])
    assert np.abs(shifts).max() > 0.2 and not np.allclose(shifts, 0)
    assert np.abs(shifts).max() <= 3.0 + 1e-6  # within one LR pixel
    # dates change the land: per-band means of the clear pixels differ far more than the noise
    means = np.array([[real.lr[t, b][real.lr_valid[t]].mean() for b in range(4)] for t in range(6)])
    assert np.ptp(means[:, 3]) > 0.01
    # nodata pixels hold 0 and are marked invalid
    assert np.all(real.lr[np.broadcast_to(~real.lr_valid[:, None], real.lr.shape)] == 0)


def test_real_world_clouds_are_masked_with_their_shadows() -> None:
    p = WorldParams(cloud_probability=1.0)
    s = make_world_scene(SIZE, frames=4, seed=11, real_world=True, object_free=True, params=p)
    kinds = [f["kind"] for f in s.extra["frames"]]
    assert kinds.count("cloud") == 2  # at most half the revisits are cloudy
    for t, k in enumerate(kinds):
        if k == "cloud":
            assert 0.0 < s.lr_valid[t].mean() < 1.0
        elif k == "clear":
            assert s.lr_valid[t].all()


def test_round_trip_through_scene_folder(tmp_path, scenes) -> None:
    s = scenes[1]
    path = write_scene(s, tmp_path / "w")
    back = read_scene(path)
    assert back.bands == s.bands and back.dates == s.dates
    np.testing.assert_allclose(back.hr, s.hr, atol=6e-5)
    np.testing.assert_allclose(back.lr, s.lr, atol=6e-5)
    np.testing.assert_array_equal(back.masks["roads"], s.masks["roads"])
    np.testing.assert_array_equal(back.masks["buildings"], s.masks["buildings"])
    assert back.extra["world"] == "v2" and "_land_cover" not in back.extra


def test_dataset_has_the_asked_share_of_object_free_scenes(tmp_path) -> None:
    paths = make_world_dataset(tmp_path / "ds", n_scenes=5, size_hr=96, seed=1, frames=2, object_free_share=0.4)
    assert len(paths) == 5 and len(list_scenes(tmp_path / "ds")) == 5
    split = load_split(tmp_path / "ds")
    assert sorted(sum((split[k] for k in ("train", "val", "test")), [])) == [p.name for p in paths]
    flags = [read_scene(p).extra["object_free_scene"] for p in paths]
    assert sum(flags) == 2
    for p in paths:
        s = read_scene(p)
        if s.extra["object_free_scene"]:
            assert not s.masks["roads"].any() and not s.masks["buildings"].any()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 3"):
        make_world_scene(100)
    with pytest.raises(ValueError, match="frames"):
        make_world_scene(96, frames=0)
    with pytest.raises(ValueError, match="archetype"):
        make_world_scene(96, params=WorldParams(archetype="moon"))


def test_cli_synth_world_v2(tmp_path, capsys) -> None:
    from core.cli.main import main

    out = tmp_path / "world"
    args = ["synth", "--world", "v2", "--out", str(out), "--scenes", "2", "--size", "48", "--frames", "2"]
    assert main(args + ["--object-free-share", "0.5", "--real-world"]) == 0
    scenes = [read_scene(p) for p in list_scenes(out)]
    assert len(scenes) == 2 and all(s.bands == list(BANDS) for s in scenes)
    assert sorted(s.extra["object_free_scene"] for s in scenes) == [False, True]
    assert all(s.extra["version"] == "real-world" for s in scenes)
    # the v1 towns have no object-free scenes to ask for
    assert main(["synth", "--out", str(tmp_path / "v1"), "--object-free-share", "0.5"]) != 0
    assert "v2 only" in capsys.readouterr().err
