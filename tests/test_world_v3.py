"""Synthetic world v3: every city type builds, with masks that match what the image shows.

Why these checks: the masks are the training targets, so a mask pixel must
show a roof (or a carriageway) and nothing else must; every type must look
like its kind of city (building share), keep some object-free land, and be
reproducible; and the scene folder and the CLI must carry the city type.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from rasterio.crs import CRS
from scipy import ndimage

from core.data.scene import list_scenes, read_scene, write_scene
from core.data.synthetic.land import COVER
from core.data.synthetic.roofs import URBAN_SPECTRA
from core.data.synthetic.spectra import AMBIENT
from core.data.synthetic.towns import HR_PIXEL_M
from core.data.synthetic.world_v3 import (
    BANDS,
    CITY_TYPES,
    LOCATIONS,
    WorldV3Params,
    make_world_v3_dataset,
    make_world_v3_scene,
    utm_epsg,
)

SIZE = 192

# Building share (of HR pixels) each type must reach at 192 px; wide, as scenes vary on purpose.
BUILDING_SHARE = {
    "european_blocks": (0.1, 0.5),
    "informal_settlement": (0.2, 0.7),
    "high_rise": (0.05, 0.5),
    "villa_suburb": (0.03, 0.3),
    "superblocks": (0.02, 0.3),
    "industrial": (0.05, 0.5),
    "port_rail_airport": (0.0, 0.4),
    "motorway_interchange": (0.0, 0.2),
    "desert_city": (0.1, 0.5),
    "tropical_city": (0.08, 0.5),
}
# Types whose streets form a network (informal lanes, ports and airports need not).
NETWORKS = ("european_blocks", "high_rise", "villa_suburb", "superblocks", "industrial", "motorway_interchange",
            "desert_city", "tropical_city")


@pytest.fixture(scope="module")
def scenes():
    return {c: make_world_v3_scene(SIZE, frames=2, seed=3, city_type=c) for c in CITY_TYPES}


def test_every_city_type_builds_georeferenced_four_band_scenes(scenes) -> None:
    assert set(BUILDING_SHARE) == set(CITY_TYPES) == set(LOCATIONS)
    for city, s in scenes.items():
        s.validate()
        assert s.extra["city_type"] == city and s.extra["world"] == "v3"
        assert s.bands == list(BANDS) == ["B02", "B03", "B04", "B08"]
        assert s.hr.shape == (4, SIZE, SIZE) and s.lr.shape == (2, 4, SIZE // 3, SIZE // 3)
        assert np.isfinite(s.hr).all() and np.isfinite(s.lr).all() and 0 < s.hr.min() and s.hr.max() <= 1
        epsg = CRS.from_user_input(s.crs).to_epsg()
        assert epsg == s.extra["epsg"] and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760)
        place = next(p for p in LOCATIONS[city] if p[0] == s.extra["place"])
        assert utm_epsg(place[1], place[2]) == epsg
        # near its city: northing from the latitude (false northing 10 000 km in the south)
        lat = s.extra["latitude"]
        assert abs(s.hr_transform.f - (lat * 110_574 + (1e7 if lat < 0 else 0))) < 20_000
        assert 150_000 < s.hr_transform.c < 850_000
        assert s.hr_transform.a == pytest.approx(HR_PIXEL_M) and s.lr_transform.a == pytest.approx(10.0)
        assert s.lr_transform.c % 10 == 0 and s.lr_transform.f % 10 == 0


def test_masks_show_roofs_and_carriageways(scenes) -> None:
    for city, s in scenes.items():
        b, r = s.masks["buildings"], s.masks["roads"]
        cover = s.extra["_land_cover"]
        assert not (b & r).any(), city
        if b.any():
            assert np.isin(cover[b], [COVER["building"], COVER["tree"], COVER["shrub"]]).mean() > 0.9, city
            # the image at a footprint is its roof's spectrum, lit between full shadow (sky light only) and
            # a slope facing the sun (at most 1 / sin(elevation) times flat ground: low winter sun on a gable)
            inner = ndimage.binary_erosion(b, np.ones((3, 3), bool))  # edge pixels mix with their neighbours
            roof = s.extra["_object_color"][:, inner]
            ratio = s.hr[:, inner] / np.maximum(roof, 1e-3)
            top = 1.15 / np.sin(np.radians(s.extra["sun"]["elevation"]))
            lit = (ratio > 0.6 * AMBIENT[:, None]) & (ratio < top)
            assert inner.sum() < 20 or lit.mean() > 0.9, (city, lit.mean())
            # roofs are not vegetation (blue paint is bright in NIR, so a lone blue hall may reach 0.5)
            ndvi = (s.hr[3] - s.hr[2]) / (s.hr[3] + s.hr[2])
            trees = np.isin(cover, [COVER["tree"], COVER["forest_deciduous"], COVER["forest_mixed"]])
            assert np.median(ndvi[b]) < 0.6, city
            if trees.sum() > 50:
                assert np.median(ndvi[b]) < np.median(ndvi[trees]) - 0.1, city
        if r.any():
            assert np.isin(cover[r], [COVER["road"], COVER["tree"], COVER["shrub"]]).mean() > 0.85, city
        # no roof is drawn without its mask: roof pixels off the mask are only mixed pixels at its edge
        # (a pixel centred in a 1.5 m alley is half roof, and outside both footprints)
        near = ndimage.binary_dilation(b, np.ones((3, 3), bool))
        assert ((cover == COVER["building"]) & ~near).mean() < 0.002, city


def test_building_road_and_free_shares_fit_each_type(scenes) -> None:
    for city, s in scenes.items():
        lo, hi = BUILDING_SHARE[city]
        assert lo <= s.extra["building_share"] <= hi, (city, s.extra["building_share"])
        assert s.extra["building_share"] == pytest.approx(s.masks["buildings"].mean(), abs=1e-3)
        assert s.extra["road_share"] > 0.01 or city == "port_rail_airport", city
        # every scene keeps land far from any object (parks, fields, water, forest), none is empty
        assert 0.03 < s.extra["object_free_share"] < 0.98, (city, s.extra["object_free_share"])
    dense = [scenes[c].extra["building_share"] for c in ("informal_settlement", "european_blocks", "desert_city")]
    sparse = [scenes[c].extra["building_share"] for c in ("motorway_interchange", "villa_suburb")]
    assert min(dense) > max(sparse)


def test_street_networks_are_connected(scenes) -> None:
    for city in NETWORKS:
        r = scenes[city].masks["roads"]
        lab, k = ndimage.label(r, np.ones((3, 3)))
        sizes = np.sort(np.bincount(lab.ravel())[1:])[::-1]
        # a park or forest may cut the grid, and a carriageway may cross no other street inside the
        # scene; beyond that, streets join up
        assert sizes[:3].sum() >= 0.6 * r.sum(), (city, sizes[:5], r.sum())


def test_roof_table_is_complete_and_cited() -> None:
    for name, s in URBAN_SPECTRA.items():
        assert len(s.mean) == 4 and all(0 < v < 1 for v in s.mean) and s.note, name
    # spectral shapes the sources agree on: red tile is red, vegetation-free; white paint is bright and flat
    tile, white, bitumen = (np.asarray(URBAN_SPECTRA[k].mean) for k in ("clay_tile", "white_paint", "bitumen"))
    assert tile[2] > 2 * tile[0] and white.min() > 0.5 and bitumen.max() < 0.08


def test_reproducible_by_seed_and_varied_across_seeds() -> None:
    a = make_world_v3_scene(SIZE, frames=1, seed=11, city_type="high_rise")
    b = make_world_v3_scene(SIZE, frames=1, seed=11, city_type="high_rise")
    c = make_world_v3_scene(SIZE, frames=1, seed=12, city_type="high_rise")
    np.testing.assert_array_equal(a.hr, b.hr)
    np.testing.assert_array_equal(a.lr, b.lr)
    assert all((a.masks[k] == b.masks[k]).all() for k in a.masks)
    assert not np.array_equal(a.masks["buildings"], c.masks["buildings"])
    # a seed without a type draws one among those allowed
    d = make_world_v3_scene(SIZE, frames=1, seed=5, params=WorldV3Params(city_types=["industrial", "desert_city"]))
    assert d.extra["city_type"] in ("industrial", "desert_city")


def test_same_scene_in_another_process() -> None:
    """Draws must not depend on string hashing (set order), which changes from process to process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import hashlib; from core.data.synthetic.world_v3 import make_world_v3_scene as m; "
            "s = m(96, frames=1, seed=4, city_type='informal_settlement'); "
            "print(hashlib.sha1(s.hr.tobytes() + s.masks['buildings'].tobytes()).hexdigest())")
    root = Path(__file__).resolve().parents[1]
    out = [subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": h}).stdout.strip() for h in ("1", "2")]
    assert out[0] == out[1] and len(out[0]) == 40


def test_scene_folder_round_trip_and_real_world_revisits(tmp_path) -> None:
    s = make_world_v3_scene(SIZE, frames=3, seed=2, real_world=True, city_type="informal_settlement")
    assert s.extra["version"] == "real-world" and len(s.extra["frames"]) == 3
    path = write_scene(s, tmp_path / "scene")
    back = read_scene(path)
    assert back.extra["city_type"] == "informal_settlement" and back.bands == list(BANDS)
    assert CRS.from_user_input(back.crs).to_epsg() == s.extra["epsg"]
    assert (back.masks["buildings"] == s.masks["buildings"]).all() and (back.masks["roads"] == s.masks["roads"]).all()
    np.testing.assert_allclose(back.hr, s.hr, atol=1e-4)
    meta = json.loads((path / "scene.json").read_text())
    assert not any(k.startswith("_") for k in meta["extra"])


def test_bad_arguments_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="city type"):
        make_world_v3_scene(SIZE, city_type="atlantis")
    with pytest.raises(ValueError, match="multiple of 3"):
        make_world_v3_scene(100)
    with pytest.raises(ValueError, match="city type"):
        make_world_v3_dataset(tmp_path, 1, city_types=["atlantis"])


def test_cli_synth_world_v3(tmp_path, capsys) -> None:
    from core.cli.main import main

    out = tmp_path / "cities"
    args = ["synth", "--world", "v3", "--out", str(out), "--scenes", "2", "--size", "96", "--frames", "2"]
    assert main(args + ["--city-types", "villa_suburb,superblocks"]) == 0
    scenes = [read_scene(p) for p in list_scenes(out)]
    assert sorted(s.extra["city_type"] for s in scenes) == ["superblocks", "villa_suburb"]
    assert (out / "split.json").is_file()
    for p in list_scenes(out):
        assert json.loads((p / "scene.json").read_text())["extra"]["city_type"] in ("superblocks", "villa_suburb")
    assert main(args + ["--object-free-share", "0.3"]) != 0
    assert "v2 only" in capsys.readouterr().err
    assert main(args + ["--city-types", "atlantis"]) != 0
    assert "atlantis" in capsys.readouterr().err
